// Argument checks shared by the subcommands, so every command words the same mistake the same way.

/** `--flag N` as a positive integer, or undefined when the flag was not given. */
export function positiveInt(value: string | undefined, flag: string): number | undefined {
  return integerFlag(value, flag, 1, "a positive integer");
}

export function nonNegativeInt(value: string | undefined, flag: string): number | undefined {
  return integerFlag(value, flag, 0, "a non-negative integer");
}

function integerFlag(value: string | undefined, flag: string, min: number, what: string) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n < min)
    throw new Error(`--${flag} must be ${what}, got '${value}'`);
  return n;
}

/**
 * For `herd <command> --local -f <manifest>`: the manifest path, or an error printed and exit
 * code 64 when --local or -f is missing (on a cluster, the object is `kubectl apply`'d instead).
 */
export function localManifest(
  command: string,
  kind: string,
  values: { local?: boolean; file?: string },
  usage: string,
): string | 64 {
  if (!values.local) {
    console.error(
      `herd ${command}: only --local is implemented here; on a cluster, kubectl apply the ${kind}\n${usage}`,
    );
    return 64;
  }
  if (!values.file) {
    console.error(`herd ${command}: -f <manifest> is required\n${usage}`);
    return 64;
  }
  return values.file;
}
