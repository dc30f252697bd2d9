// Every value a person typed (paths, names, commands' arguments) reaches a remote shell only
// through quoteShell: POSIX single quotes, where nothing is special but the quote itself,
// which is closed, escaped and reopened.

export function quoteShell(value: string): string {
  if (value.includes("\0")) throw new Error("A shell argument cannot contain a NUL byte");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Joins arguments into one command line, each quoted. */
export function shellCommand(...args: string[]): string {
  return args.map(quoteShell).join(" ");
}
