/**
 * Command-line tokenizer of the FlashSystem simulator: the part of the array's restricted
 * shell (`rbash`) that splits a command line into words.
 *
 * Words are separated by blanks; `'...'` is literal, `"..."` is literal except that `$`,
 * `` ` `` and `\` are refused (the restricted shell would expand them), and a backslash outside
 * quotes escapes the next character. An unquoted shell metacharacter (`;`, `|`, `&`, `<`, `>`,
 * `$`, `` ` ``, `(`, `)`) is refused: the restricted shell of a real array does not run a second
 * command, and neither does the simulator.
 *
 * @module
 */

/** A command line the restricted shell refuses. */
export class ShellSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShellSyntaxError';
  }
}

const METACHARS = new Set([';', '|', '&', '<', '>', '$', '`', '(', ')', '\n', '\r']);

/**
 * Split `line` into words as the restricted shell would.
 * @throws {@link ShellSyntaxError} on an unquoted metacharacter, an unterminated quote or an expansion inside double quotes
 */
export function tokenize(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellSyntaxError('unexpected EOF while looking for matching quote');
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new ShellSyntaxError('unexpected EOF while looking for matching quote');
      const inner = line.slice(i + 1, end);
      if (/[$`\\]/.test(inner)) throw new ShellSyntaxError('restricted: expansion inside double quotes');
      cur += inner;
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= line.length) throw new ShellSyntaxError('trailing backslash');
      cur += line[i + 1];
      inWord = true;
      i += 2;
      continue;
    }
    if (METACHARS.has(c)) throw new ShellSyntaxError(`restricted: unquoted shell metacharacter ${JSON.stringify(c)}`);
    cur += c;
    inWord = true;
    i++;
  }
  if (inWord) words.push(cur);
  return words;
}
