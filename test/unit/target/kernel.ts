/**
 * A configfs that plays the kernel's part on a plain temp directory, for the target-helper
 * unit tests: `mkdir` of an object fills in the attribute files and default groups the LIO
 * and nvmet kernels create (names as Linux 6.1 shows them), `write` to an attribute that the
 * kernel would not have fails with ENOENT, and `rmdir` fails with ENOTEMPTY while the
 * directory holds anything the helper created (links, child objects), as configfs does; only
 * kernel-made attributes and default groups go away with their object.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile, lstat, rmdir as fsRmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendError } from '../../../src/errors.js';
import { Configfs } from '../../../src/target/configfs.js';

interface Template {
  files?: Record<string, string>;
  dirs?: Record<string, Template>;
}

const T = '/sys/kernel/config/target';
const N = '/sys/kernel/config/nvmet';

const templates: [RegExp, Template][] = [
  [new RegExp(`^${T}/core/iblock_\\d+$`), { files: { hba_info: 'HBA Index: 0 plugin: iblock version: v5.0', hba_mode: '0' } }],
  [
    new RegExp(`^${T}/core/iblock_\\d+/[^/]+$`),
    {
      files: { control: '', udev_path: '', enable: '0', info: '' },
      dirs: { wwn: { files: { vpd_unit_serial: 'T10 VPD Unit Serial Number:', vpd_protocol_identifier: '' } }, attrib: { files: { block_size: '512', emulate_tpu: '0' } }, pr: {}, alua: { dirs: { default_tg_pt_gp: {} } }, statistics: {} },
    },
  ],
  [new RegExp(`^${T}/iscsi/[^/]+$`), { dirs: { fabric_statistics: {} } }],
  [
    new RegExp(`^${T}/iscsi/[^/]+/tpgt_\\d+$`),
    {
      files: { enable: '0', dynamic_sessions: '' },
      dirs: {
        acls: {},
        lun: {},
        np: {},
        attrib: { files: { authentication: '0', generate_node_acls: '0', demo_mode_write_protect: '1', cache_dynamic_acls: '0' } },
        auth: { files: { userid: '', password: '' } },
        param: { files: { AuthMethod: 'CHAP,None' } },
      },
    },
  ],
  [new RegExp(`^${T}/iscsi/[^/]+/tpgt_\\d+/lun/lun_\\d+$`), { files: { alua_tg_pt_gp: 'default_tg_pt_gp', alua_tg_pt_offline: '0' }, dirs: { statistics: {} } }],
  [new RegExp(`^${T}/iscsi/[^/]+/tpgt_\\d+/np/[^/]+$`), { files: { iser: '0' } }],
  [
    new RegExp(`^${T}/iscsi/[^/]+/tpgt_\\d+/acls/[^/]+$`),
    {
      files: { cmdsn_depth: '64', info: '' },
      dirs: { auth: { files: { userid: '', password: '', userid_mutual: '', password_mutual: '', authenticate_target: '0' } }, attrib: { files: { dataout_timeout: '3' } }, param: {}, fabric_statistics: {} },
    },
  ],
  [new RegExp(`^${T}/iscsi/[^/]+/tpgt_\\d+/acls/[^/]+/lun_\\d+$`), { files: { write_protect: '0' }, dirs: { statistics: {} } }],
  [new RegExp(`^${N}/subsystems/[^/]+$`), { files: { attr_allow_any_host: '0', attr_serial: '1234567890abcdef', attr_version: '1.3', attr_model: 'Linux' }, dirs: { namespaces: {}, allowed_hosts: {} } }],
  [
    new RegExp(`^${N}/subsystems/[^/]+/namespaces/\\d+$`),
    { files: { device_path: '', device_uuid: '00000000-0000-0000-0000-000000000000', device_nguid: '00000000-0000-0000-0000-000000000000', enable: '0', revalidate_size: '', buffered_io: '0', ana_grpid: '1' } },
  ],
  [new RegExp(`^${N}/ports/\\d+$`), { files: { addr_trtype: '', addr_adrfam: '', addr_traddr: '', addr_trsvcid: '', addr_treq: 'not specified', param_inline_data_size: '-1' }, dirs: { subsystems: {}, referrals: {}, ana_groups: {} } }],
  [new RegExp(`^${N}/hosts/[^/]+$`), { files: { dhchap_key: '' } }],
];

/** The kernel-emulating configfs. `auto` holds every path the "kernel" made. */
export class KernelConfigfs extends Configfs {
  readonly auto = new Set<string>();
  /** Paths whose writes fail (to test roll-back), with the errno to report. */
  readonly failWrites = new Map<string, string>();

  private async populate(path: string, t: Template): Promise<void> {
    for (const [f, v] of Object.entries(t.files ?? {})) {
      await writeFile(this.p(`${path}/${f}`), v);
      this.auto.add(`${path}/${f}`);
    }
    for (const [d, sub] of Object.entries(t.dirs ?? {})) {
      await mkdir(this.p(`${path}/${d}`));
      this.auto.add(`${path}/${d}`);
      await this.populate(`${path}/${d}`, sub);
    }
  }

  override async mkdir(path: string): Promise<void> {
    const existed = await this.exists(path);
    await super.mkdir(path);
    if (existed) return;
    const t = templates.find(([re]) => re.test(path));
    if (t) await this.populate(path, t[1]);
  }

  override async write(path: string, value: string, secret = false): Promise<void> {
    if (this.failWrites.has(path)) throw new BackendError(`configfs: cannot write ${path}: ${this.failWrites.get(path)}`);
    if (!(await this.exists(path))) throw new BackendError(`configfs: cannot write ${path}: ENOENT (no such attribute)`);
    await super.write(path, value, secret);
  }

  private async removeAuto(path: string): Promise<void> {
    const st = await lstat(this.p(path));
    if (!st.isDirectory()) {
      await rm(this.p(path));
      this.auto.delete(path);
      return;
    }
    for (const e of await readdir(this.p(path))) {
      const child = `${path}/${e}`;
      if (!this.auto.has(child)) throw new BackendError(`configfs: cannot remove ${path}: ENOTEMPTY (${e})`);
      await this.removeAuto(child);
    }
    await fsRmdir(this.p(path));
    this.auto.delete(path);
  }

  override async rmdir(path: string): Promise<void> {
    if (!(await this.exists(path))) return;
    if (this.auto.has(path)) throw new BackendError(`configfs: cannot remove ${path}: EPERM (default group)`);
    for (const e of await readdir(this.p(path))) {
      if (!this.auto.has(`${path}/${e}`)) throw new BackendError(`configfs: cannot remove ${path}: ENOTEMPTY (${e})`);
    }
    for (const e of await readdir(this.p(path))) await this.removeAuto(`${path}/${e}`);
    await fsRmdir(this.p(path));
  }

  /** Forget everything under `/sys/kernel/config` but the top-level groups: what a reboot (or module reload) leaves. */
  async reboot(): Promise<void> {
    await rm(this.p('/sys/kernel/config'), { recursive: true, force: true });
    this.auto.clear();
    await makeConfigfsRoots(this.hostRoot);
  }
}

/** Create the top-level configfs groups of a loaded LIO core (with the iSCSI fabric) and nvmet. */
export async function makeConfigfsRoots(root: string): Promise<void> {
  for (const d of ['target/core', 'target/iscsi', 'nvmet/subsystems', 'nvmet/ports', 'nvmet/hosts']) {
    await mkdir(join(root, 'sys/kernel/config', d), { recursive: true });
  }
}

/** A temp host root with the configfs roots, and a kernel-emulating configfs on it. */
export async function makeHostRoot(): Promise<{ root: string; configfs: KernelConfigfs; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'brick-target-'));
  await makeConfigfsRoots(root);
  return { root, configfs: new KernelConfigfs(root), cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Every path (relative to `/sys/kernel/config`) of the tree that the kernel did not make: what the helper created. */
export async function createdPaths(fs: KernelConfigfs): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string) => {
    for (const e of await readdir(fs.p(p)).catch(() => [] as string[])) {
      const child = `${p}/${e}`;
      if (!fs.auto.has(child)) out.push(child.slice('/sys/kernel/config/'.length));
      const st = await lstat(fs.p(child));
      if (st.isDirectory() && !st.isSymbolicLink()) await walk(child);
    }
  };
  await walk('/sys/kernel/config');
  return out.sort();
}
