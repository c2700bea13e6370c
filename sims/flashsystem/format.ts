/**
 * The FlashSystem CLI's output shapes: the detailed view (`attribute<delim>value` lines) and the
 * concise view (a header line and rows), both aligned in columns without `-delim`; capacities
 * in the CLI's human format and FlashCopy times as it prints them.
 *
 * @module
 */

/** The CLI's human capacity format (`10.00GB`). */
export function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)}${units[u]}`;
}

/** A FlashCopy start time as the CLI prints it (`YYMMDDhhmmss`, UTC). */
export function svcTime(ms: number): string {
  const d = new Date(ms);
  const p = (x: number): string => String(x).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** Detailed view: `attr<delim>value` lines (aligned `attr value` without `-delim`). */
export function detailed(attrs: [string, string][], delim: string | undefined): string {
  return attrs.map(([k, v]) => (delim !== undefined ? `${k}${delim}${v}` : `${k} ${v}`)).join('\n') + '\n';
}

/** Concise view: a header and rows (aligned columns without `-delim`). */
export function concise(header: string[], rows: string[][], delim: string | undefined, headerMismatch: boolean): string {
  const head = headerMismatch ? header.slice(0, -1) : header;
  if (delim !== undefined) return [head, ...rows].map((r) => r.join(delim)).join('\n') + '\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(' ').trimEnd()).join('\n') + '\n';
}
