/**
 * Pure parts of the FlashSystem driver: command rendering and quoting, naming rules, host-name
 * sanitizing, output parsers, CMMVC error mapping, host-key fingerprints.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ssh2 from 'ssh2';
import {
  cliError,
  cliValue as v,
  hostKeyFingerprint,
  hostNamePrefix,
  knownHostsFingerprints,
  parseConcise,
  parseDetailed,
  prefixOfHostName,
  renderCommand,
  sshFingerprint,
  validateIqn,
  validateObjectName,
} from '../../../src/drivers/ibm-flashsystem/index.js';
import { generateSshKeyPair, tokenize } from '../../../sims/flashsystem/index.js';
import { AlreadyExistsError, BackendError, InsufficientCapacityError, InvalidInputError, InvalidStateError, NotFoundError } from '../../../src/errors.js';

describe('renderCommand', () => {
  it('quotes values and keeps constants and integers bare', () => {
    assert.equal(
      renderCommand(['svctask', 'mkvdisk', '-name', v('volume-1 a'), '-mdiskgrp', v('mdiskgrp0'), '-iogrp', 0, '-size', 10, '-unit', 'gb']),
      "svctask mkvdisk -name 'volume-1 a' -mdiskgrp 'mdiskgrp0' -iogrp 0 -size 10 -unit gb",
    );
    assert.equal(renderCommand(['svcinfo', 'lshost', '-delim', '!']), 'svcinfo lshost -delim !');
  });

  it('round-trips through the restricted shell as single words', () => {
    const line = renderCommand(['svctask', 'mkhost', '-iscsiname', v('iqn.2004-10.com.x:a,b'), '-name', v('a b.c_d-e')]);
    assert.deepEqual(tokenize(line), ['svctask', 'mkhost', '-iscsiname', 'iqn.2004-10.com.x:a,b', '-name', 'a b.c_d-e']);
  });

  for (const evil of ["a'b", 'a;b', 'a$(id)', 'a`id`', 'a|b', 'a&b', 'a>b', 'a\nb', 'a"b', 'a\\b', '', 'é']) {
    it(`refuses the value ${JSON.stringify(evil)}`, () => {
      assert.throws(() => renderCommand(['svcinfo', 'lsvdisk', v(evil)]), (e: unknown) => e instanceof InvalidInputError && e.field === 'cli');
    });
  }

  it('refuses non-constant constants and bad numbers', () => {
    assert.throws(() => renderCommand(['svcinfo', 'lsvdisk;id']), InvalidInputError);
    assert.throws(() => renderCommand(['svcinfo', '-size', -1]), InvalidInputError);
    assert.throws(() => renderCommand(['svcinfo', '-size', 1.5]), InvalidInputError);
  });
});

describe('naming rules', () => {
  it('accepts CLI object names and refuses others, naming the field', () => {
    for (const ok of ['volume-0a1b', '_x', 'a b', 'A.b-c_d', 'x'.repeat(63)]) assert.equal(validateObjectName('f', ok), ok);
    for (const bad of ['', '1abc', '-a', ' a', 'a ', 'a;b', "a'", 'x'.repeat(64), 'é']) {
      assert.throws(() => validateObjectName('volume.name', bad), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.name');
    }
    assert.throws(() => validateObjectName('f', 42), InvalidInputError);
  });

  it('accepts iqn/eui/naa names only', () => {
    for (const ok of ['iqn.1994-05.com.redhat:abc', 'iqn.2010-10.org.openstack:volume-1', 'eui.0123456789ABCDEF', 'naa.0123456789abcdef']) assert.equal(validateIqn('i', ok), ok);
    for (const bad of ['', 'iqn', 'iqn.1994-05', 'iqn.1994-05.com.x:a b', "iqn.1994-05.com.x:a'", 'eui.123', 'x.1994-05.com.x']) {
      assert.throws(() => validateIqn('connector.initiator', bad), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    }
  });

  it('sanitizes host names as Cinder does, but always into a valid CLI name', () => {
    assert.equal(hostNamePrefix('compute-1.example.com'), 'compute-1.example.com');
    assert.equal(hostNamePrefix('9host'), '_9host');
    assert.equal(hostNamePrefix('host@x!y'), 'host-x-y');
    assert.equal(hostNamePrefix('hôte'), 'h-te');
    assert.equal(hostNamePrefix('-dash'), '_-dash');
    assert.equal(hostNamePrefix('a'.repeat(100)).length, 54);
    assert.equal(hostNamePrefix(`${'a'.repeat(53)} b`), `${'a'.repeat(53)}-`);
    for (const h of ['9host', "x'; rm -rf /", 'a'.repeat(100), 'trailing ', 'é']) {
      validateObjectName('name', `${hostNamePrefix(h)}-12345678`);
    }
    assert.throws(() => hostNamePrefix(''), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.host');
    assert.throws(() => hostNamePrefix(undefined), InvalidInputError);
  });

  it('finds the prefix of a host object name', () => {
    assert.equal(prefixOfHostName('compute-1-00001234'), 'compute-1');
    assert.equal(prefixOfHostName('plain'), 'plain');
  });
});

describe('output parsers', () => {
  it('parses a detailed view; repeated attributes collect; values may contain the delimiter', () => {
    const view = parseDetailed('id!3\nname!h1\niscsi_name!iqn.a:1\nnode_logged_in_count!0\niscsi_name!iqn.a:2\nnote!a!b\n\n');
    assert.deepEqual(view.get('iscsi_name'), ['iqn.a:1', 'iqn.a:2']);
    assert.deepEqual(view.get('note'), ['a!b']);
    assert.deepEqual(view.get('id'), ['3']);
  });

  it('parses a concise view, and an empty output as no rows', () => {
    assert.deepEqual(parseConcise('id!name\n0!a\n1!b\n', 'lshost', ['name']), [
      { id: '0', name: 'a' },
      { id: '1', name: 'b' },
    ]);
    assert.deepEqual(parseConcise('', 'lshost'), []);
    assert.deepEqual(parseConcise('id!name\n', 'lshost'), []);
  });

  it('refuses rows that do not match the header and missing columns', () => {
    assert.throws(() => parseConcise('id!name\n0!a!extra\n', 'lsnode'), (e: unknown) => e instanceof BackendError && /do not match/.test((e as Error).message));
    assert.throws(() => parseConcise('id!name\n0!a\n', 'lsnode', ['iscsi_name']), (e: unknown) => e instanceof BackendError && /iscsi_name/.test((e as Error).message));
  });
});

describe('CMMVC error mapping', () => {
  const cases: [string, new (...a: never[]) => Error][] = [
    ['CMMVC5753E The specified object does not exist or is not a suitable candidate.', NotFoundError],
    ['CMMVC5754E The specified object does not exist, or the name supplied does not meet the naming rules.', NotFoundError],
    ['CMMVC6035E The action failed as the object already exists.', AlreadyExistsError],
    ['CMMVC6581E The command has failed because ... IQN ... already exists.', AlreadyExistsError],
    ['CMMVC5840E The virtual disk (VDisk) was not deleted because it is mapped to a host', InvalidStateError],
    ['CMMVC5871E The action failed because one or more of the configured port names is in a mapping.', InvalidStateError],
    ['CMMVC6071E The VDisk-to-host mapping was not created because the VDisk is already mapped to a host.', InvalidStateError],
    ['CMMVC5860E The action failed because there were not enough extents in the managed disk group.', InsufficientCapacityError],
    ['CMMVC5786E The action failed because the cluster is not in a stable state.', BackendError],
    ['rbash: restricted', BackendError],
  ];
  for (const [stderr, cls] of cases) {
    it(`${stderr.slice(0, 10)} -> ${cls.name}`, () => {
      const e = cliError("svctask rmvdisk 'v1'", 1, '', `${stderr}\n`, { kind: 'vdisk', id: 'v1' });
      assert.ok(e instanceof cls, `${e.constructor.name}`);
      assert.equal(e.details?.cmmvc, /^CMMVC/.test(stderr) ? stderr.slice(0, 10) : null);
    });
  }
});

describe('host-key fingerprints', () => {
  const key = generateSshKeyPair();
  const parsed = ssh2.utils.parseKey(key.public);
  if (parsed instanceof Error) throw parsed;
  const blob = (Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH();
  const fp = sshFingerprint(blob);

  it('computes OpenSSH SHA256 fingerprints from a key line, with or without comment', () => {
    assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(hostKeyFingerprint(key.public, 'k'), fp);
    assert.equal(hostKeyFingerprint(`${key.public.trim()} array@site`, 'k'), fp);
    assert.equal(hostKeyFingerprint(fp, 'k'), fp);
  });

  it('reads known_hosts lines for the host, port-qualified or not', () => {
    const text = `# c\n10.0.0.1 ${key.public}\n[10.0.0.2]:2222 ${key.public}\nother ${key.public}\n@revoked 10.0.0.1 ${key.public}\n`;
    assert.deepEqual(knownHostsFingerprints(text, '10.0.0.1', 22, 'f'), [fp]);
    assert.deepEqual(knownHostsFingerprints(text, '10.0.0.2', 2222, 'f'), [fp]);
    assert.deepEqual(knownHostsFingerprints(text, '10.0.0.3', 22, 'f'), []);
  });
});
