/**
 * The Kubernetes manifests of `brick csi` (deploy/kubernetes/, issue #15) hang together: every
 * YAML file parses; each kustomization names files that exist; the driver name is one name
 * everywhere (CSIDriver, StorageClass provisioner, VolumeSnapshotClass driver, registration
 * path, plugin directory, `--driver-name`); the brick container's socket is the one every
 * sidecar's `--csi-address` names, through the same volume; images carry pinned tags; the node
 * plugin is privileged with Bidirectional propagation on the kubelet directory and the host
 * paths it needs; the node id comes from `spec.nodeName`; every `brick csi` flag exists in the
 * command's commander definition (src/csi/command.ts) with a valid value; StorageClass
 * parameters pass the controller's own validator (src/csi/validate.ts) and name a backend of
 * the configuration the ConfigMap carries, which itself passes the CLI's config parser.
 *
 * The checks are pure functions over the parsed files returning a list of problems. Besides the
 * real manifests (no problem expected), each check is run on a copy broken in one place and
 * must report it, so a check that compares nothing fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, type Option } from 'commander';
import { parseAllDocuments } from 'yaml';
import { registerCsiCommand } from '../../../src/csi/command.js';
import { FS_TYPES, SIDECAR_PREFIX, parseParameters } from '../../../src/csi/validate.js';
import { checkBackends, parseConfig } from '../../../src/cli/config.js';
import '../../../src/drivers/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

// ---- The shapes read here (a partial view of the Kubernetes objects) ----

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  mountPropagation?: string;
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: Mount[];
  securityContext?: { privileged?: boolean };
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { port: string | number } };
}
interface PodVolume {
  name: string;
  hostPath?: { path: string };
  emptyDir?: object;
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
}
interface PodSpec {
  containers: Container[];
  volumes?: PodVolume[];
  hostNetwork?: boolean;
  dnsPolicy?: string;
  serviceAccountName?: string;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown> & { template?: { spec: PodSpec } };
  provisioner?: string;
  driver?: string;
  parameters?: Record<string, string>;
  allowVolumeExpansion?: boolean;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
interface Kustomization {
  resources?: string[];
  configMapGenerator?: { name: string; namespace?: string; behavior?: string; files?: string[] }[];
}

/** One parsed YAML document and the file (relative to deploy/kubernetes) it came from. */
interface Doc {
  file: string;
  m: Manifest;
}

/** One kustomization: its directory, its documents (bases included) and its brick config file text. */
interface Build {
  dir: string;
  docs: Doc[];
  configFile: string;
  config: string;
}

/** Everything under deploy/kubernetes, parsed. */
interface Tree {
  files: Map<string, unknown[]>;
  builds: Build[];
  examples: Doc[];
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(e) ? [p] : [];
  });
}

/** Parse every YAML file; throws with the file name on a syntax error. */
function loadTree(): Tree {
  const files = new Map<string, unknown[]>();
  for (const p of yamlFiles(DEPLOY)) {
    const rel = relative(DEPLOY, p).split('\\').join('/');
    const docs = parseAllDocuments(readFileSync(p, 'utf8'));
    const list = Array.isArray(docs) ? docs : [docs];
    for (const d of list) if (d.errors.length > 0) throw new Error(`${rel}: ${d.errors[0]!.message}`);
    files.set(rel, list.map((d) => d.toJS() as unknown).filter((x) => x !== null));
  }
  const builds = [...files.keys()].filter((f) => posix.basename(f) === 'kustomization.yaml').map((f) => build(files, posix.dirname(f)));
  const examples = [...files.entries()].filter(([f]) => f.startsWith('examples/')).flatMap(([file, ms]) => ms.map((m) => ({ file, m: m as Manifest })));
  return { files, builds, examples };
}

/** The documents a kustomization directory yields (resources, recursively through bases), and its ConfigMap's brick config. */
function build(files: Map<string, unknown[]>, dir: string): Build {
  const k = files.get(posix.join(dir, 'kustomization.yaml'))?.[0] as Kustomization | undefined;
  if (!k) throw new Error(`${dir}: no kustomization.yaml`);
  const docs: Doc[] = [];
  let configFile = '';
  for (const r of k.resources ?? []) {
    const target = posix.normalize(posix.join(dir, r));
    if (files.has(posix.join(target, 'kustomization.yaml'))) {
      // kustomize refuses a base whose directory contains the overlay ("cycle detected").
      if (target === '.' || dir === target || dir.startsWith(`${target}/`)) throw new Error(`${dir}/kustomization.yaml: base ${r} contains this overlay, which kustomize refuses`);
      const base = build(files, target);
      docs.push(...base.docs);
      configFile = base.configFile;
    } else {
      const ms = files.get(target);
      if (!ms) throw new Error(`${dir}/kustomization.yaml: resource ${r} does not exist`);
      docs.push(...ms.map((m) => ({ file: target, m: m as Manifest })));
    }
  }
  for (const g of k.configMapGenerator ?? []) {
    if (g.name !== 'brick-config') continue;
    const file = g.files?.[0];
    if (!file) throw new Error(`${dir}/kustomization.yaml: configMapGenerator brick-config names no file`);
    configFile = posix.normalize(posix.join(dir, file));
    docs.push({ file: configFile, m: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, namespace: g.namespace }, data: { [posix.basename(file)]: '' } } });
  }
  if (!configFile || !existsSync(join(DEPLOY, configFile))) throw new Error(`${dir}: no brick config file (${configFile || 'none'})`);
  return { dir, docs, configFile, config: readFileSync(join(DEPLOY, configFile), 'utf8') };
}

// ---- Helpers over pods ----

const of = (docs: Doc[], kind: string) => docs.filter((d) => d.m.kind === kind);
const workloads = (docs: Doc[]) => docs.filter((d) => d.m.spec?.template?.spec);
const podOf = (d: Doc): PodSpec => d.m.spec!.template!.spec;
const brickOf = (pod: PodSpec) => pod.containers.find((c) => c.name === 'brick');
const isBrickWorkload = (d: Doc) => Boolean(brickOf(podOf(d))) && d.m.metadata.name.startsWith('brick-csi-');
const where = (d: Doc, c?: Container) => `${d.file} ${d.m.kind}/${d.m.metadata.name}${c ? ` container ${c.name}` : ''}`;

/** The value of `--name=value` or `--name value` in `args`. */
function flag(args: readonly string[] | undefined, name: string): string | undefined {
  for (const [i, a] of (args ?? []).entries()) {
    if (a === `--${name}`) return args![i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

/** The path of a unix:// endpoint or a plain socket path. */
const socketPath = (s: string | undefined) => (s === undefined ? undefined : s.replace(/^unix:\/\//, ''));

/** The mount (and its volume) under which `path` lies in `c`: the longest mountPath that is a prefix. */
function mountFor(pod: PodSpec, c: Container, path: string): { mount: Mount; volume?: PodVolume } | undefined {
  const mounts = (c.volumeMounts ?? []).filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  const mount = mounts.sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return mount ? { mount, volume: pod.volumes?.find((v) => v.name === mount.name) } : undefined;
}

/** `$(VAR)` references resolved against the container's env: the EnvVar behind `value`. */
function envBehind(c: Container, value: string | undefined): EnvVar | undefined {
  const m = /^\$\(([A-Z_][A-Z0-9_]*)\)$/.exec(value ?? '');
  return m ? c.env?.find((e) => e.name === m[1]) : undefined;
}

// ---- The checks: each returns the problems it found ----

/** One driver name everywhere. */
function checkDriverName(b: Build): string[] {
  const out: string[] = [];
  const drivers = of(b.docs, 'CSIDriver');
  if (drivers.length !== 1) return [`${b.dir}: expected one CSIDriver, found ${drivers.length}`];
  const name = drivers[0]!.m.metadata.name;
  for (const d of of(b.docs, 'StorageClass')) if (d.m.provisioner !== name) out.push(`${where(d)}: provisioner ${d.m.provisioner} is not ${name}`);
  for (const d of of(b.docs, 'VolumeSnapshotClass')) if (d.m.driver !== name) out.push(`${where(d)}: driver ${d.m.driver} is not ${name}`);
  for (const d of workloads(b.docs).filter(isBrickWorkload)) {
    const pod = podOf(d);
    const brick = brickOf(pod)!;
    if (flag(brick.args, 'driver-name') !== name) out.push(`${where(d, brick)}: --driver-name ${flag(brick.args, 'driver-name')} is not ${name}`);
    for (const c of pod.containers.filter((x) => x.name === 'node-driver-registrar')) {
      const reg = flag(c.args, 'kubelet-registration-path');
      if (reg !== `/var/lib/kubelet/plugins/${name}/csi.sock`) out.push(`${where(d, c)}: --kubelet-registration-path ${reg} is not /var/lib/kubelet/plugins/${name}/csi.sock`);
    }
  }
  return out;
}

/** The brick container's socket is each sidecar's --csi-address, through the same volume; the node's socket is where the registrar says. */
function checkSockets(b: Build): string[] {
  const out: string[] = [];
  for (const d of workloads(b.docs).filter(isBrickWorkload)) {
    const pod = podOf(d);
    const brick = brickOf(pod)!;
    const sock = socketPath(flag(brick.args, 'endpoint'));
    const own = sock ? mountFor(pod, brick, sock) : undefined;
    if (!sock || !own) {
      out.push(`${where(d, brick)}: --endpoint ${sock} is not on a mounted volume`);
      continue;
    }
    for (const c of pod.containers.filter((x) => x !== brick)) {
      const addr = socketPath(flag(c.args, 'csi-address'));
      if (addr !== sock) out.push(`${where(d, c)}: --csi-address ${addr} is not the plugin's ${sock}`);
      const theirs = addr ? mountFor(pod, c, addr) : undefined;
      if (!theirs || theirs.mount.name !== own.mount.name || theirs.mount.mountPath !== own.mount.mountPath) out.push(`${where(d, c)}: does not mount ${own.mount.name} at ${own.mount.mountPath}`);
      const reg = flag(c.args, 'kubelet-registration-path');
      if (reg !== undefined) {
        const hostSock = own.volume?.hostPath ? posix.join(own.volume.hostPath.path, relative(own.mount.mountPath, sock)) : undefined;
        if (hostSock !== reg) out.push(`${where(d, c)}: the plugin's socket is ${hostSock} on the host, the registrar announces ${reg}`);
      }
    }
  }
  return out;
}

/** Every container image names a pinned tag; sidecars come from registry.k8s.io/sig-storage; brick's tag is the package version. */
function checkImages(docs: Doc[]): string[] {
  const out: string[] = [];
  for (const d of workloads(docs)) {
    for (const c of podOf(d).containers) {
      // The tag is what follows the last ':' when no '/' comes after it (`host:5000/name` has none).
      const tag = /:([^:/@]+)$/.exec(c.image ?? '')?.[1];
      if (!tag || tag === 'latest') {
        out.push(`${where(d, c)}: image ${c.image} has no pinned tag`);
        continue;
      }
      if (c.name === 'brick' && c.image !== `brick:${VERSION}`) out.push(`${where(d, c)}: image ${c.image} is not brick:${VERSION}`);
      if (c.name !== 'brick' && isBrickWorkload(d) && !c.image!.startsWith('registry.k8s.io/sig-storage/')) out.push(`${where(d, c)}: sidecar image ${c.image} is not from registry.k8s.io/sig-storage`);
    }
  }
  return out;
}

/** The sidecars each plugin needs are there, and each livenessprobe serves the port the brick container's probe asks. */
function checkSidecars(b: Build): string[] {
  const out: string[] = [];
  const want: Record<string, string[]> = { controller: ['csi-provisioner', 'csi-attacher', 'csi-snapshotter', 'csi-resizer', 'livenessprobe'], node: ['csi-node-driver-registrar', 'livenessprobe'] };
  for (const d of workloads(b.docs).filter(isBrickWorkload)) {
    const pod = podOf(d);
    const brick = brickOf(pod)!;
    const mode = flag(brick.args, 'mode') ?? 'all';
    const images = pod.containers.map((c) => /sig-storage\/([^:]+):/.exec(c.image ?? '')?.[1]).filter(Boolean);
    for (const s of want[mode] ?? []) if (!images.includes(s)) out.push(`${where(d)}: --mode ${mode} needs the ${s} sidecar`);
    const probe = pod.containers.find((c) => c.image?.includes('/livenessprobe:'));
    const port = brick.livenessProbe?.httpGet?.port;
    const portNumber = typeof port === 'number' ? port : brick.ports?.find((p) => p.name === port)?.containerPort;
    if (!probe || String(portNumber) !== flag(probe.args, 'health-port')) out.push(`${where(d, brick)}: livenessProbe port ${portNumber} is not the livenessprobe's --health-port ${flag(probe?.args, 'health-port')}`);
  }
  return out;
}

/** The node plugin: privileged, host network, the host paths it needs, Bidirectional kubelet dir, node id from spec.nodeName. */
function checkNodePlugin(b: Build): string[] {
  const out: string[] = [];
  const nodes = workloads(b.docs).filter((d) => d.m.kind === 'DaemonSet' && isBrickWorkload(d));
  if (nodes.length !== 1) return [`${b.dir}: expected one node DaemonSet, found ${nodes.length}`];
  const d = nodes[0]!;
  const pod = podOf(d);
  const brick = brickOf(pod)!;
  if (flag(brick.args, 'mode') !== 'node') out.push(`${where(d, brick)}: --mode is not node`);
  if (brick.securityContext?.privileged !== true) out.push(`${where(d, brick)}: not privileged`);
  if (pod.hostNetwork !== true) out.push(`${where(d)}: not on the host network`);
  if (pod.hostNetwork && pod.dnsPolicy !== 'ClusterFirstWithHostNet') out.push(`${where(d)}: hostNetwork without dnsPolicy ClusterFirstWithHostNet cannot resolve the store's Service`);
  const host: Record<string, 'rw' | 'ro' | 'any'> = { '/dev': 'rw', '/sys': 'rw', '/run/brick': 'rw', '/var/lib/brick': 'rw', '/var/lib/kubelet': 'rw', '/etc/iscsi': 'any', '/etc/nvme': 'ro', '/lib/modules': 'ro' };
  for (const [path, access] of Object.entries(host)) {
    const m = (brick.volumeMounts ?? []).find((x) => x.mountPath === path);
    const v = m && pod.volumes?.find((x) => x.name === m.name);
    if (!m || v?.hostPath?.path !== path) out.push(`${where(d, brick)}: host ${path} is not mounted at ${path}`);
    else if (access !== 'any' && Boolean(m.readOnly) !== (access === 'ro')) out.push(`${where(d, brick)}: ${path} should be ${access === 'ro' ? 'read-only' : 'writable'}`);
  }
  const kubelet = (brick.volumeMounts ?? []).find((x) => x.mountPath === '/var/lib/kubelet');
  if (kubelet?.mountPropagation !== 'Bidirectional') out.push(`${where(d, brick)}: /var/lib/kubelet propagation is ${kubelet?.mountPropagation}, not Bidirectional`);
  const nodeId = envBehind(brick, flag(brick.args, 'node-id'));
  if (nodeId?.valueFrom?.fieldRef?.fieldPath !== 'spec.nodeName') out.push(`${where(d, brick)}: --node-id ${flag(brick.args, 'node-id')} does not come from spec.nodeName`);
  return out;
}

/** The `brick csi` options, read from the command's own commander definition. */
function csiOptions(): readonly Option[] {
  const program = new Command();
  registerCsiCommand(program, () => ({}), () => undefined);
  const csi = program.commands.find((c) => c.name() === 'csi');
  if (!csi) throw new Error('registerCsiCommand added no csi command');
  return csi.options;
}

/** Every brick container runs `csi` with flags the command has, valid choices, and its required options. */
function checkFlags(docs: Doc[], options: readonly Option[]): string[] {
  const out: string[] = [];
  for (const d of workloads(docs).filter(isBrickWorkload)) {
    const brick = brickOf(podOf(d))!;
    const args = brick.args ?? [];
    if (args[0] !== 'csi') out.push(`${where(d, brick)}: args do not start with the csi command`);
    for (const [i, a] of args.slice(1).entries()) {
      if (!a.startsWith('--')) {
        if (!args[i]?.startsWith('--') || args[i]!.includes('=')) out.push(`${where(d, brick)}: stray argument ${a}`);
        continue;
      }
      const name = a.split('=')[0]!;
      const opt = options.find((o) => o.long === name);
      if (!opt) {
        out.push(`${where(d, brick)}: brick csi has no option ${name}`);
        continue;
      }
      const value = flag(args, name.slice(2));
      if (opt.argChoices && !opt.argChoices.includes(value ?? '')) out.push(`${where(d, brick)}: ${name} ${value} is not one of ${opt.argChoices.join(', ')}`);
    }
    for (const o of options.filter((x) => x.mandatory)) if (flag(args, o.long!.slice(2)) === undefined) out.push(`${where(d, brick)}: required option ${o.long} missing`);
    const mode = flag(args, 'mode');
    if ((d.m.kind === 'Deployment' && mode !== 'controller') || (d.m.kind === 'DaemonSet' && mode !== 'node')) out.push(`${where(d, brick)}: a ${d.m.kind} runs --mode ${mode}`);
  }
  return out;
}

/**
 * The config file parses as a brick config with known drivers, persistence is PostgreSQL without
 * a password in the URL, the pods read it where the ConfigMap is mounted, and PGPASSWORD comes
 * from a key the Secret has.
 */
function checkConfig(b: Build): string[] {
  const out: string[] = [];
  try {
    const cfg = parseConfig(b.config, b.configFile, {}, 0);
    checkBackends(cfg, undefined);
    const url = typeof cfg.persistence === 'string' ? cfg.persistence : '';
    if (!/^postgres(ql)?:\/\//.test(url)) out.push(`${b.configFile}: persistence ${url} is not a PostgreSQL URL (controller and nodes share one store)`);
    if (/^[^:]+:\/\/[^/@]*:[^/@]*@/.test(url)) out.push(`${b.configFile}: the persistence URL carries a password`);
  } catch (err) {
    out.push(`${b.configFile}: ${(err as Error).message}`);
  }
  const cm = of(b.docs, 'ConfigMap').find((d) => d.m.metadata.name === 'brick-config');
  const key = Object.keys(cm?.m.data ?? {})[0];
  const secrets = of(b.docs, 'Secret');
  for (const d of workloads(b.docs).filter(isBrickWorkload)) {
    const pod = podOf(d);
    const brick = brickOf(pod)!;
    const vol = pod.volumes?.find((v) => v.configMap?.name === 'brick-config');
    const mount = vol && brick.volumeMounts?.find((m) => m.name === vol.name);
    const wanted = mount && key ? posix.join(mount.mountPath, key) : undefined;
    const env = brick.env?.find((e) => e.name === 'BRICK_CONFIG')?.value;
    if (!cm || !wanted || env !== wanted) out.push(`${where(d, brick)}: BRICK_CONFIG ${env} is not the ConfigMap's file ${wanted}`);
    const ref = brick.env?.find((e) => e.name === 'PGPASSWORD')?.valueFrom?.secretKeyRef;
    const secret = secrets.find((s) => s.m.metadata.name === ref?.name);
    if (!ref || !secret || !(ref.key in { ...secret.m.stringData, ...secret.m.data })) out.push(`${where(d, brick)}: PGPASSWORD does not come from a key of a Secret in the manifests`);
  }
  return out;
}

/** StorageClasses: parameters the controller accepts, a configured backend, a known fstype, expansion on; the CSIDriver's fields. */
function checkClasses(b: Build): string[] {
  const out: string[] = [];
  let backends: string[] = [];
  try {
    backends = parseConfig(b.config, b.configFile, {}, 0).backends.map((x) => x.volume_backend_name);
  } catch {
    // reported by checkConfig
  }
  for (const d of of(b.docs, 'StorageClass')) {
    try {
      const p = parseParameters(d.m.parameters);
      if (!backends.includes(p.backend ?? '')) out.push(`${where(d)}: parameters.backend ${p.backend} is not a backend of ${b.configFile} (${backends.join(', ')})`);
    } catch (err) {
      out.push(`${where(d)}: the controller refuses its parameters: ${(err as Error).message}`);
    }
    const fs = d.m.parameters?.[`${SIDECAR_PREFIX}fstype`];
    if (fs !== undefined && !FS_TYPES.includes(fs)) out.push(`${where(d)}: fstype ${fs} is not one of ${FS_TYPES.join(', ')}`);
    if (d.m.allowVolumeExpansion !== true) out.push(`${where(d)}: allowVolumeExpansion is not true`);
  }
  for (const d of of(b.docs, 'VolumeSnapshotClass')) {
    for (const k of Object.keys(d.m.parameters ?? {})) if (!k.startsWith(SIDECAR_PREFIX)) out.push(`${where(d)}: parameter ${k}: the plugin takes no snapshot parameters`);
  }
  for (const d of of(b.docs, 'CSIDriver')) {
    const s = d.m.spec ?? {};
    const expect = { attachRequired: true, podInfoOnMount: false, volumeLifecycleModes: ['Persistent'], fsGroupPolicy: 'File' };
    for (const [k, v] of Object.entries(expect)) if (JSON.stringify(s[k]) !== JSON.stringify(v)) out.push(`${where(d)}: spec.${k} is ${JSON.stringify(s[k])}, not ${JSON.stringify(v)}`);
  }
  return out;
}

/** Service accounts the pods use exist; the examples' claims name a StorageClass of the base. */
function checkReferences(b: Build, examples: Doc[]): string[] {
  const out: string[] = [];
  const accounts = of(b.docs, 'ServiceAccount').map((d) => `${d.m.metadata.namespace}/${d.m.metadata.name}`);
  for (const d of workloads(b.docs).filter(isBrickWorkload)) {
    const sa = `${d.m.metadata.namespace}/${podOf(d).serviceAccountName}`;
    if (!accounts.includes(sa)) out.push(`${where(d)}: service account ${sa} is not in the manifests`);
  }
  const classes = of(b.docs, 'StorageClass').map((d) => d.m.metadata.name);
  for (const d of of(examples, 'PersistentVolumeClaim')) {
    const sc = d.m.spec?.storageClassName as string | undefined;
    if (!classes.includes(sc ?? '')) out.push(`${where(d)}: storageClassName ${sc} is not a StorageClass of ${b.dir}`);
  }
  return out;
}

/** All checks over the whole tree. */
function problems(tree: Tree, options: readonly Option[]): string[] {
  // A file in several kustomizations is checked in each: report each problem once.
  return [...new Set([
    ...tree.builds.flatMap((b) => [...checkDriverName(b), ...checkSockets(b), ...checkSidecars(b), ...checkNodePlugin(b), ...checkConfig(b), ...checkClasses(b), ...checkReferences(b, tree.examples)]),
    ...checkImages([...tree.builds.flatMap((b) => b.docs), ...tree.examples]),
    ...checkFlags(tree.builds.flatMap((b) => b.docs), options),
  ])];
}

// ---- Tests ----

const tree = loadTree();
const options = csiOptions();

/** A deep copy of the tree to break in one place. */
function copyTree(): Tree {
  return structuredClone(tree);
}
const base = (t: Tree) => t.builds.find((b) => b.dir === '.')!;
const find = (t: Tree, kind: string, name?: string) => base(t).docs.find((d) => d.m.kind === kind && (name === undefined || d.m.metadata.name === name))!.m;
const container = (t: Tree, kind: 'Deployment' | 'DaemonSet', name: string) => find(t, kind).spec!.template!.spec.containers.find((c) => c.name === name)!;
const setFlag = (c: Container, name: string, value: string) => {
  c.args = c.args!.map((a) => (a.startsWith(`--${name}=`) ? `--${name}=${value}` : a));
};

test('every YAML file parses, and the top level, the base and the LVM overlay are kustomizations of existing files', () => {
  assert.ok(tree.files.size >= 12, `only ${tree.files.size} YAML files`);
  assert.deepEqual(tree.builds.map((b) => b.dir).sort(), ['.', 'base', 'lvm']);
  const listed = new Set(tree.builds.flatMap((b) => [...b.docs.map((d) => d.file), posix.join(b.dir, 'kustomization.yaml')]));
  const stray = [...tree.files.keys()].filter((f) => !listed.has(f) && !f.startsWith('examples/'));
  assert.deepEqual(stray, [], 'every manifest outside examples/ is in a kustomization');
  for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'CSIDriver', 'Secret', 'ConfigMap', 'Deployment', 'DaemonSet', 'StorageClass', 'VolumeSnapshotClass']) {
    assert.ok(base(tree).docs.some((d) => d.m.kind === kind), `the base has a ${kind}`);
  }
  assert.deepEqual(of(tree.builds.find((b) => b.dir === 'lvm')!.docs, 'StorageClass').map((d) => d.m.metadata.name).sort(), ['brick-file', 'brick-lvm']);
  assert.ok(of(tree.examples, 'Pod').length === 1 && of(tree.examples, 'PersistentVolumeClaim').length === 1, 'examples/ has a PVC and a pod');
});

test('the csi flags are read from the command itself', () => {
  const longs = options.map((o) => o.long);
  for (const f of ['--endpoint', '--node-id', '--mode', '--driver-name', '--metrics-address']) assert.ok(longs.includes(f), f);
  assert.deepEqual(options.find((o) => o.long === '--mode')!.argChoices, ['controller', 'node', 'all']);
});

test('the manifests hang together', () => {
  assert.deepEqual(problems(tree, options), []);
});

test('the driver name is the default one and the same everywhere', () => {
  assert.equal(find(tree, 'CSIDriver').metadata.name, 'csi.brick.example.org');
  const t = copyTree();
  find(t, 'StorageClass').provisioner = 'csi.other.example.org';
  assert.match(checkDriverName(base(t)).join('\n'), /provisioner csi\.other\.example\.org is not csi\.brick\.example\.org/);
  const u = copyTree();
  find(u, 'VolumeSnapshotClass').driver = 'x.example.org';
  assert.match(checkDriverName(base(u)).join('\n'), /driver x\.example\.org/);
  const v = copyTree();
  setFlag(container(v, 'DaemonSet', 'brick'), 'driver-name', 'y.example.org');
  assert.match(checkDriverName(base(v)).join('\n'), /--driver-name y\.example\.org/);
  const w = copyTree();
  setFlag(container(w, 'DaemonSet', 'node-driver-registrar'), 'kubelet-registration-path', '/var/lib/kubelet/plugins/z/csi.sock');
  assert.match(checkDriverName(base(w)).join('\n'), /--kubelet-registration-path/);
});

test('a sidecar on another socket, or without the socket volume, is caught', () => {
  const t = copyTree();
  setFlag(container(t, 'Deployment', 'csi-attacher'), 'csi-address', '/csi/other.sock');
  assert.match(checkSockets(base(t)).join('\n'), /csi-attacher: --csi-address \/csi\/other\.sock/);
  const u = copyTree();
  container(u, 'Deployment', 'csi-resizer').volumeMounts = [];
  assert.match(checkSockets(base(u)).join('\n'), /csi-resizer: does not mount socket-dir/);
  const v = copyTree();
  find(v, 'DaemonSet').spec!.template!.spec.volumes!.find((x) => x.name === 'plugin-dir')!.hostPath!.path = '/var/lib/kubelet/plugins/elsewhere';
  assert.match(checkSockets(base(v)).join('\n'), /the registrar announces/);
});

test('unpinned or latest images are caught', () => {
  for (const image of ['registry.k8s.io/sig-storage/csi-attacher', 'registry.k8s.io/sig-storage/csi-attacher:latest', 'brick:latest']) {
    const t = copyTree();
    container(t, 'Deployment', image.startsWith('brick') ? 'brick' : 'csi-attacher').image = image;
    assert.match(checkImages(base(t).docs).join('\n'), /has no pinned tag/, image);
  }
  const u = copyTree();
  container(u, 'DaemonSet', 'brick').image = 'brick:9.9.9';
  assert.match(checkImages(base(u).docs).join('\n'), /is not brick:/);
});

test('a missing sidecar or a liveness port mismatch is caught', () => {
  const t = copyTree();
  const pod = find(t, 'Deployment').spec!.template!.spec;
  pod.containers = pod.containers.filter((c) => c.name !== 'csi-snapshotter');
  assert.match(checkSidecars(base(t)).join('\n'), /needs the csi-snapshotter sidecar/);
  const u = copyTree();
  setFlag(container(u, 'DaemonSet', 'liveness-probe'), 'health-port', '1234');
  assert.match(checkSidecars(base(u)).join('\n'), /--health-port 1234/);
});

test('the node plugin: privilege, propagation, host paths and the node id are checked', () => {
  const cases: [string, (t: Tree) => void, RegExp][] = [
    ['unprivileged', (t) => (container(t, 'DaemonSet', 'brick').securityContext = { privileged: false }), /not privileged/],
    ['HostToContainer', (t) => (container(t, 'DaemonSet', 'brick').volumeMounts!.find((m) => m.mountPath === '/var/lib/kubelet')!.mountPropagation = 'HostToContainer'), /not Bidirectional/],
    ['no /dev', (t) => (container(t, 'DaemonSet', 'brick').volumeMounts = container(t, 'DaemonSet', 'brick').volumeMounts!.filter((m) => m.mountPath !== '/dev')), /host \/dev is not mounted/],
    ['writable /lib/modules', (t) => (container(t, 'DaemonSet', 'brick').volumeMounts!.find((m) => m.mountPath === '/lib/modules')!.readOnly = false), /\/lib\/modules should be read-only/],
    ['node id from the pod name', (t) => (container(t, 'DaemonSet', 'brick').env!.find((e) => e.name === 'NODE_NAME')!.valueFrom = { fieldRef: { fieldPath: 'metadata.name' } }), /does not come from spec\.nodeName/],
    ['no host network', (t) => (find(t, 'DaemonSet').spec!.template!.spec.hostNetwork = false), /not on the host network/],
  ];
  for (const [what, breakIt, expected] of cases) {
    const t = copyTree();
    breakIt(t);
    assert.match(checkNodePlugin(base(t)).join('\n'), expected, what);
  }
});

test('a flag brick csi does not have, a bad --mode, or a missing required option is caught', () => {
  const t = copyTree();
  container(t, 'DaemonSet', 'brick').args!.push('--no-such-flag=1');
  assert.match(checkFlags(base(t).docs, options).join('\n'), /no option --no-such-flag/);
  const u = copyTree();
  setFlag(container(u, 'Deployment', 'brick'), 'mode', 'both');
  assert.match(checkFlags(base(u).docs, options).join('\n'), /--mode both is not one of controller, node, all/);
  const v = copyTree();
  container(v, 'Deployment', 'brick').args = container(v, 'Deployment', 'brick').args!.filter((a) => !a.startsWith('--node-id'));
  assert.match(checkFlags(base(v).docs, options).join('\n'), /required option --node-id missing/);
});

test('StorageClass parameters go through the controller validator and name configured backends', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ backend: 'files', color: 'red' }, /refuses its parameters: parameters\.color/],
    [{ backend: 'files', multiattach: 'yes' }, /refuses its parameters: parameters\.multiattach/],
    [{ backend: 'nosuch' }, /parameters\.backend nosuch is not a backend/],
    [{ backend: 'files', [`${SIDECAR_PREFIX}fstype`]: 'btrfs' }, /fstype btrfs/],
  ];
  for (const [params, expected] of cases) {
    const t = copyTree();
    find(t, 'StorageClass').parameters = params;
    assert.match(checkClasses(base(t)).join('\n'), expected, JSON.stringify(params));
  }
  const u = copyTree();
  find(u, 'CSIDriver').spec!.attachRequired = false;
  assert.match(checkClasses(base(u)).join('\n'), /spec\.attachRequired is false, not true/);
});

test('the ConfigMap config is a valid brick config on a shared PostgreSQL store, read where it is mounted', () => {
  const cases: [(b: Build) => void, RegExp][] = [
    [(b) => (b.config = b.config.replace('volume_driver: file', 'volume_driver: nosuch')), /not a known driver/],
    [(b) => (b.config = b.config.replace(/persistence: .*/, 'persistence: sqlite:///var/lib/brick/brick.sqlite')), /not a PostgreSQL URL/],
    [(b) => (b.config = b.config.replace('postgresql://brick@', 'postgresql://brick:hunter2@')), /carries a password/],
    [(b) => (container({ builds: [b] } as Tree, 'DaemonSet', 'brick').env!.find((e) => e.name === 'BRICK_CONFIG')!.value = '/etc/brick.yaml'), /BRICK_CONFIG \/etc\/brick\.yaml/],
    [(b) => (container({ builds: [b] } as Tree, 'Deployment', 'brick').env!.find((e) => e.name === 'PGPASSWORD')!.valueFrom!.secretKeyRef!.key = 'pw'), /PGPASSWORD/],
  ];
  for (const [breakIt, expected] of cases) {
    const t = copyTree();
    breakIt(base(t));
    assert.match(checkConfig(base(t)).join('\n'), expected);
  }
});

test('a claim on an unknown StorageClass or a missing service account is caught', () => {
  const t = copyTree();
  of(t.examples, 'PersistentVolumeClaim')[0]!.m.spec!.storageClassName = 'nosuch';
  assert.match(checkReferences(base(t), t.examples).join('\n'), /storageClassName nosuch/);
  const u = copyTree();
  find(u, 'Deployment').spec!.template!.spec.serviceAccountName = 'default';
  assert.match(checkReferences(base(u), u.examples).join('\n'), /service account brick-csi\/default/);
});
