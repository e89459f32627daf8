// What every fuzz target (test/fuzz/*.fuzz.ts) shares: the check that a parser either returns
// or throws one of its own format errors, and a way to carry several files in one fuzz input.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ErrorClass = new (...args: any[]) => Error;

/**
 * Runs `parse`; an error that is not one of `allowed`, or one that does not name `source`
 * (the file the parser was told it reads), is rethrown, which Jazzer reports as a finding.
 */
export function onlyFormatErrors(
  allowed: ErrorClass[],
  source: string,
  parse: () => unknown,
): void {
  try {
    parse();
  } catch (err) {
    check(allowed, source, err);
  }
}

export async function onlyFormatErrorsAsync(
  allowed: ErrorClass[],
  source: string,
  parse: () => Promise<unknown>,
): Promise<void> {
  try {
    await parse();
  } catch (err) {
    check(allowed, source, err);
  }
}

function check(allowed: ErrorClass[], source: string, err: unknown): void {
  if (!allowed.some((c) => err instanceof c)) throw err;
  if (!(err as Error).message.includes(source))
    throw new Error(`format error does not name ${source}: ${(err as Error).message}`);
}

// A bundle is several files in one input: for each, a u32 little-endian length, then its
// bytes. Files past the end of the input are absent; a length past the end takes the rest.

export function bundle(files: (Uint8Array | string)[]): Buffer {
  return Buffer.concat(
    files.flatMap((f) => {
      const bytes = Buffer.from(f);
      const n = Buffer.alloc(4);
      n.writeUInt32LE(bytes.length);
      return [n, bytes];
    }),
  );
}

export function unbundle(data: Buffer, names: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  for (const name of names) {
    if (at + 4 > data.length) break;
    const n = data.readUInt32LE(at);
    at += 4;
    out.set(name, data.subarray(at, Math.min(at + n, data.length)));
    at += n;
  }
  return out;
}

/** A scratch folder for this process, removed at exit; `reset` empties a subfolder of it. */
export function scratch(name: string): { root: string; reset(sub: string): string } {
  const root = mkdtempSync(path.join(tmpdir(), `herd-fuzz-${name}-`));
  process.on("exit", () => rmSync(root, { recursive: true, force: true }));
  return {
    root,
    reset(sub) {
      const dir = path.join(root, sub);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}

/** Writes the bundle's files into `dir`. */
export function writeFiles(dir: string, files: Map<string, Buffer>): void {
  for (const [name, bytes] of files) writeFileSync(path.join(dir, name), bytes);
}
