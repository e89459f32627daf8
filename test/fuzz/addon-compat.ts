// Makes Jazzer.js's prebuilt libFuzzer addon load on this machine's older C runtime.
//
// @jazzer.js/fuzzer 4.0.0 ships prebuilds/fuzzer-linux-x64.node built against glibc 2.38 and
// GCC 13's libstdc++; Debian 12 has glibc 2.36 and GCC 12's. The addon asks for exactly three
// symbols that the older libraries lack, and the dynamic loader refuses the whole file for
// the version requirements alone:
//
//   __isoc23_strtoul, __isoc23_strtol @ GLIBC_2.38   C23 strtoul/strtol (they also accept
//                                                     "0b"); libFuzzer parses its flags with
//                                                     them: plain strtoul/strtol @ GLIBC_2.2.5
//   _ZSt21ios_base_library_initv @ GLIBCXX_3.4.32    a link-time marker from GCC 13's
//                                                     <iostream>, never called (no relocation)
//
// The fix rewrites three things in the ELF file, in place, sizes unchanged: the __isoc23_
// symbols' names point at the plain name (the suffix of the same dynstr string), and the two
// missing version requirements are renamed to versions the libraries have (GLIBC_2.2.5,
// GLIBCXX_3.4). Anything else the file needs that is missing here fails with its name:
// this is a narrow, checked patch, not a general glibc downgrade.
//
//   node --import tsx test/fuzz/addon-compat.ts <addon.node>   patches if needed; prints what it did
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** A version requirement the patch knows how to retarget, and what may use it. */
interface Retarget {
  from: string;
  to: string;
  /** What a symbol of this version becomes: its new name, or undefined to leave it. */
  symbol: (name: string, hasRelocation: boolean) => { rename?: string } | "refuse";
}

const retargets: Retarget[] = [
  {
    from: "GLIBC_2.38",
    to: "GLIBC_2.2.5",
    symbol: (name) =>
      name === "__isoc23_strtoul" || name === "__isoc23_strtol"
        ? { rename: name.slice("__isoc23_".length) }
        : "refuse",
  },
  {
    from: "GLIBCXX_3.4.32",
    to: "GLIBCXX_3.4",
    symbol: (name, hasRelocation) =>
      name === "_ZSt21ios_base_library_initv" && !hasRelocation ? {} : "refuse",
  },
];

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

const SHT_RELA = 4,
  SHT_DYNSYM = 11,
  SHT_GNU_versym = 0x6fffffff,
  SHT_GNU_verneed = 0x6ffffffe,
  SHT_GNU_verdef = 0x6ffffffd;

function sections(b: Buffer): Section[] {
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1)
    throw new Error("not a little-endian 64-bit ELF file");
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      nameAt: b.readUInt32LE(at),
      type: b.readUInt32LE(at + 4),
      offset: Number(b.readBigUInt64LE(at + 0x18)),
      size: Number(b.readBigUInt64LE(at + 0x20)),
      link: b.readUInt32LE(at + 0x28),
      entsize: Number(b.readBigUInt64LE(at + 0x38)),
    };
  });
  const names = raw[shstrndx]!;
  return raw.map((s) => ({ ...s, name: cString(b, names.offset + s.nameAt) }));
}

function cString(b: Buffer, at: number): string {
  return b.toString("latin1", at, b.indexOf(0, at));
}

/** The ELF hash of a version name, as vna_hash stores it. */
function elfHash(name: string): number {
  let h = 0;
  for (const c of Buffer.from(name, "latin1")) {
    h = ((h << 4) + c) >>> 0;
    const g = h & 0xf0000000;
    if (g) h ^= g >>> 24;
    h &= ~g >>> 0;
  }
  return h >>> 0;
}

/** Version names this machine's copy of `library` defines (its .gnu.version_d). */
function definedVersions(library: string): Set<string> {
  const b = readFileSync(`/lib/x86_64-linux-gnu/${library}`);
  const secs = sections(b);
  const verdef = secs.find((s) => s.type === SHT_GNU_verdef);
  const out = new Set<string>();
  if (!verdef) return out;
  const strings = secs[verdef.link]!.offset;
  for (let at = verdef.offset, next = 1; next !== 0; at += next) {
    out.add(cString(b, strings + b.readUInt32LE(at + b.readUInt32LE(at + 12))));
    next = b.readUInt32LE(at + 16);
  }
  return out;
}

/** Patches `file` in place when it needs one of the retargeted versions; returns what changed. */
export function patchAddon(file: string): string[] {
  const b = readFileSync(file);
  const secs = sections(b);
  const find = (type: number) => {
    const s = secs.find((x) => x.type === type);
    if (!s) throw new Error(`${file}: no section of type ${type.toString(16)}`);
    return s;
  };
  const verneed = find(SHT_GNU_verneed);
  const dynsym = find(SHT_DYNSYM);
  const versym = find(SHT_GNU_versym);
  const dynstr = secs[verneed.link]!.offset;
  const relocated = new Set<number>(); // dynsym indices some relocation uses
  for (const rela of secs.filter((s) => s.type === SHT_RELA && s.link === secs.indexOf(dynsym)))
    for (let at = rela.offset; at < rela.offset + rela.size; at += 24)
      relocated.add(Number(b.readBigUInt64LE(at + 8) >> 32n));

  // Every version requirement: its aux entry's offset, name and index (vna_other).
  const needs: { file: string; at: number; name: string; index: number }[] = [];
  for (let at = verneed.offset, next = 1; next !== 0; at += next) {
    const lib = cString(b, dynstr + b.readUInt32LE(at + 4));
    for (let aux = at + b.readUInt32LE(at + 8), n = b.readUInt16LE(at + 2); n > 0; n--) {
      needs.push({
        file: lib,
        at: aux,
        name: cString(b, dynstr + b.readUInt32LE(aux + 8)),
        index: b.readUInt16LE(aux + 6),
      });
      aux += b.readUInt32LE(aux + 12);
    }
    next = b.readUInt32LE(at + 12);
  }

  const changes: string[] = [];
  for (const need of needs) {
    if (definedVersions(need.file).has(need.name)) continue;
    const r = retargets.find((x) => x.from === need.name);
    if (!r)
      throw new Error(`${file} needs ${need.name} from ${need.file}, which this system lacks`);
    const target = needs.find((x) => x.file === need.file && x.name === r.to);
    if (!target) throw new Error(`${file}: no ${r.to} requirement to reuse for ${need.name}`);
    for (let i = 0; i < dynsym.size / dynsym.entsize; i++) {
      if ((b.readUInt16LE(versym.offset + 2 * i) & 0x7fff) !== need.index) continue;
      const sym = dynsym.offset + i * dynsym.entsize;
      const name = cString(b, dynstr + b.readUInt32LE(sym));
      const what = r.symbol(name, relocated.has(i));
      if (what === "refuse")
        throw new Error(`${file}: symbol ${name}@${need.name} has no known replacement`);
      if (what.rename) {
        // the plain name is the tail of the same NUL-terminated string
        b.writeUInt32LE(b.readUInt32LE(sym) + name.length - what.rename.length, sym);
        changes.push(`${name}@${need.name} -> ${what.rename}@${r.to}`);
      } else {
        changes.push(`${name}@${need.name} (unused marker) -> ${r.to}`);
      }
    }
    b.writeUInt32LE(elfHash(r.to), need.at);
    b.writeUInt32LE(b.readUInt32LE(target.at + 8), need.at + 8); // vna_name
  }
  if (changes.length > 0) writeFileSync(file, b);
  return changes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: addon-compat.ts <addon.node>");
    process.exit(2);
  }
  const changes = patchAddon(file);
  console.log(changes.length === 0 ? "nothing to patch" : changes.join("\n"));
}
