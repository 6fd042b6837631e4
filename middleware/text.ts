// Cutting text to a length without leaving half of a surrogate pair behind.

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

/**
 * `text` cut with {@link headOf} and marked with how many characters were dropped, for logs.
 *
 * @example
 * truncated('a'.repeat(5000), 2048); // 'aaa…[truncated 2952 chars]'
 */
export function truncated(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  const head = headOf(text, maxLength);
  return `${head}…[truncated ${text.length - head.length} chars]`;
}
