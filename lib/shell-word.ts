// Quoting for the shell commands the project builds: CDK's bundling hooks and the commands `npm start` prints.

/** `value` as one shell word: as is when no shell gives its characters a meaning, else single-quoted. */
export function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
