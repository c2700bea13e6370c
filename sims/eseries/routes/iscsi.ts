/**
 * iSCSI target-settings routes: the array's target IQN, alias, portals and the array-wide
 * target CHAP (secrets of 12 to 57 characters; the array keeps the secret and never shows it).
 *
 * @module
 */
import { SYS, asRecord, invalid, type RouteTable } from '../routing.js';
import type { EseriesSimState } from '../state.js';

const TARGET_REF = '90000000600A098000A4B28D00000000';

/** `iscsi/target-settings`: read, and set CHAP. */
export function iscsiTargetRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/iscsi/target-settings`, () => ({
    targetRef: TARGET_REF,
    nodeName: { iscsiNodeName: s.options.targetIqn },
    alias: { iscsiAlias: s.targetSettings.alias },
    auth: { authMethod: s.targetSettings.authMethod, chapSecret: null },
    portals: s.options.portals.filter((p) => !p.unconfigured).map((p) => ({ ipAddress: { addressType: 'ipv4', ipv4Address: p.ip }, tcpListenPort: p.port ?? 3260 })),
  }));
  r.add('POST', `${SYS}/iscsi/target-settings`, (_p, body) => {
    const b = asRecord(body);
    if (b.iqn !== undefined && b.iqn !== s.options.targetIqn) throw invalid('invalidParameters', `iqn ${String(b.iqn)} is not this array's target`);
    const enable = b.enableChapAuthentication === true;
    if (enable && (typeof b.chapSecret !== 'string' || b.chapSecret.length < 12 || b.chapSecret.length > 57)) {
      throw invalid('invalidChapSecret', 'CHAP secrets are 12 to 57 characters');
    }
    s.targetSettings = {
      enableChapAuthentication: enable,
      chapSecret: enable ? (b.chapSecret as string) : null,
      alias: typeof b.alias === 'string' ? b.alias : '',
      authMethod: enable ? 'chap' : 'none',
    };
    return { targetRef: TARGET_REF, auth: { authMethod: s.targetSettings.authMethod } };
  });
}
