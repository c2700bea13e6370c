/**
 * Secret masking for commands, logs and errors.
 *
 * Follows oslo.utils' `mask_password` as os-brick uses it (every command line and every
 * connection-properties dict it logs passes through it), with two differences: secrets passed
 * explicitly to the Executor are masked wherever they occur, and keys are matched by a suffix
 * rule (anything ending in `password`, `secret` or `passphrase`, plus the known CHAP keys) so
 * that new backends' keys are covered without a list to maintain.
 *
 * @module
 */

/** The text that replaces a secret. */
export const MASK = '***';

/** True for a key whose value is a secret: `auth_password`, `discovery_auth_password`, `san_password`, `password`, `chap_secret`, `node.session.auth.password`, ... */
export function isSecretKey(key: string): boolean {
  return /(password|passwd|secret|passphrase|private_key|privatekey|keyring_data|token)$/i.test(key.replace(/[-. ]/g, '_'));
}

/**
 * A deep copy of `value` with every secret-keyed value replaced by {@link MASK}.
 * Arrays and plain objects are walked; other values are returned as they are.
 */
export function maskObject<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => maskObject(v)) as unknown as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = isSecretKey(k) && v !== null && v !== undefined && v !== '' ? MASK : maskObject(v);
    }
    return out as T;
  }
  return value;
}

const KEY_VALUE_PATTERNS: RegExp[] = [
  // "auth_password": "x"  or 'auth_password': 'x'
  /(["']?[\w.-]*(?:password|secret|passphrase)["']?\s*[:=]\s*["'])([^"']*)(["'])/gi,
  // auth_password=x  node.session.auth.password = x  (up to whitespace, comma or end)
  /([\w.-]*(?:password|secret|passphrase)\s*[=:]\s*)([^\s,"'}]+)/gi,
];

/**
 * `text` with every given secret and every `key=value` / `"key": "value"` secret replaced by
 * {@link MASK}. Secrets shorter than 1 character are ignored.
 */
export function maskText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length > 0) out = out.split(s).join(MASK);
  }
  out = out.replace(KEY_VALUE_PATTERNS[0]!, (_m, a: string, _b: string, c: string) => `${a}${MASK}${c}`);
  out = out.replace(KEY_VALUE_PATTERNS[1]!, (_m, a: string) => `${a}${MASK}`);
  return out;
}

/**
 * An argv with secrets masked: explicit secrets anywhere, and the value that follows an
 * argument naming a secret (`-v` after `node.session.auth.password`, `--password X`,
 * `password=X`).
 */
export function maskArgv(argv: readonly string[], secrets: readonly string[] = []): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const prev = i > 0 ? argv[i - 1]! : '';
    const prev2 = i > 1 ? argv[i - 2]! : '';
    if (/^--?[\w-]*(password|secret|passphrase)$/i.test(prev) || (prev === '-v' && isSecretKey(prev2))) {
      out.push(MASK);
    } else {
      out.push(maskText(arg, secrets));
    }
  }
  return out;
}
