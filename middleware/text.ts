// Text for logs and attributes: cut to a length without leaving half of a surrogate pair behind,
// escaped where a character would reorder or break a log line, and a file's parse error told without its text.

/**
 * At most the first `maxLength` UTF-16 units of `text`, one fewer where the cut would split a surrogate
 * pair: the lone half is ill-formed text, which JSON logs escape, UTF-8 turns into U+FFFD and DynamoDB
 * and SQS may refuse.
 *
 * @example
 * headOf('ab😀', 3); // 'ab'
 */
export function headOf(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  const last = text.charCodeAt(maxLength - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? maxLength - 1 : maxLength);
}

/** What {@link truncated} puts right after the head it kept. */
export const truncationMark = '…[truncated ';

/**
 * `text` cut with {@link headOf} and marked with how many characters were dropped, for logs.
 *
 * @example
 * truncated('a'.repeat(5000), 2048); // 'aaa…[truncated 2952 chars]'
 */
export function truncated(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  const head = headOf(text, maxLength);
  return markedHead(head, text.length - head.length);
}

/** What was kept of a text, marked as {@link truncated} marks it with how many characters were dropped. */
export function markedHead(head: string, droppedChars: number): string {
  return `${head}${truncationMark}${droppedChars} chars]`;
}

/**
 * What a viewer (a log viewer, a mail client) acts on rather than shows: control characters (C0, DEL, C1:
 * an escape sequence, a newline, NEL), bidi controls (U+202E reverses what follows it, LRM, RLM and ALM
 * included), and the line and paragraph separators. JSON leaves all but C0 raw in a log line. Two copies,
 * as a global regex keeps state between `test`s.
 */
const actedOnByViewers = /[\p{Cc}\p{Bidi_Control}\u2028\u2029]/u;
const everyActedOnByViewers = new RegExp(actedOnByViewers.source, 'gu');

/** Whether `text` holds a character a viewer would act on rather than show (see `actedOnByViewers`). */
export function hasCharacterViewersActOn(text: string): boolean {
  return actedOnByViewers.test(text);
}

/**
 * `text` with each character a log viewer would act on (see `actedOnByViewers`) written as its code point,
 * `\u{202E}`, so a logged path or header shows it and where it was, and cannot reorder or split the
 * line. Text without one (nearly all) costs one regex test and comes back as it is.
 *
 * @example
 * escapedForLog('/users/abc\u202Efdp.exe'); // '/users/abc\\u{202E}fdp.exe'
 */
export function escapedForLog(text: string): string {
  if (!actedOnByViewers.test(text)) return text;
  return text.replace(
    everyActedOnByViewers,
    (character) => `\\u{${(character.codePointAt(0) as number).toString(16).toUpperCase()}}`,
  );
}

/**
 * `file is not JSON`, with where the parse stopped if `error` says: never V8's message itself, which quotes
 * the file's text (a key file's private key) over as many lines as it spans.
 */
export function notJsonProblem(file: string, error: SyntaxError): string {
  const position = /at position (\d+)/.exec(error.message)?.[1];
  return `${file} is not JSON${position === undefined ? '' : ` (at position ${position})`}`;
}
