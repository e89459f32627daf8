// Running generated code (HumanEval, MBPP) in a restricted child process, never in the
// evaluator's own: Python in new user and network namespaces (`unshare -rn`: no network, no
// privileges), an empty environment, a fresh temporary folder as its working directory and
// home, and limits on address space, CPU seconds, file size and open files set before the
// program starts (`resource.setrlimit`), plus a wall-clock timeout that kills its whole
// process group. The program passes when it exits 0.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TaskError } from "./tasks.ts";

export interface SandboxLimits {
  memoryBytes: number;
  cpuSeconds: number;
  wallSeconds: number;
  fileBytes: number;
}

export const defaultLimits: SandboxLimits = {
  memoryBytes: 1 << 30,
  cpuSeconds: 10,
  wallSeconds: 20,
  fileBytes: 16 << 20,
};

export interface SandboxResult {
  outcome: "passed" | "failed" | "timeout";
  /** The end of what the program wrote to stderr (why it failed). */
  detail: string;
}

// Applies the limits, then runs the program as __main__ (argv: program, memory, cpu, fsize).
const launcher = `import resource, sys
mem, cpu, fsize = (int(x) for x in sys.argv[2:5])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
source = open(sys.argv[1]).read()
sys.argv = [sys.argv[1]]
exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
`;

let interpreter: string | undefined;

/** The Python interpreter's real path (a pyenv shim needs an environment the sandbox lacks). */
function python(): string {
  if (interpreter) return interpreter;
  const candidate = process.env.HERD_PYTHON ?? "python3";
  const r = spawnSync(candidate, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.trim())
    throw new TaskError(`code tasks need Python 3 (${candidate} did not run; set HERD_PYTHON)`);
  const found = r.stdout.trim();
  const probe = spawnSync("unshare", ["-rn", found, "-c", "pass"], { encoding: "utf8" });
  if (probe.status !== 0)
    throw new TaskError(
      `code tasks run generated code without network in a user namespace, and \`unshare -rn\` failed here: ${(probe.stderr || probe.error?.message || "").trim()}`,
    );
  // cached only once both checks passed: a failed check fails every later call the same way
  interpreter = found;
  return interpreter;
}

export async function runPython(
  program: string,
  limits: SandboxLimits = defaultLimits,
): Promise<SandboxResult> {
  const py = python();
  const dir = mkdtempSync(path.join(tmpdir(), "herd-sandbox-"));
  try {
    writeFileSync(path.join(dir, "program.py"), program);
    writeFileSync(path.join(dir, "launch.py"), launcher);
    const args = [
      "-rn",
      py,
      "-I", // isolated: no user site, no PYTHON* variables, no script folder on sys.path
      path.join(dir, "launch.py"),
      path.join(dir, "program.py"),
      String(limits.memoryBytes),
      String(limits.cpuSeconds),
      String(limits.fileBytes),
    ];
    const child = spawn("unshare", args, {
      cwd: dir,
      env: { HOME: dir, TMPDIR: dir, PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      stdio: ["ignore", "ignore", "pipe"],
      detached: true, // its own process group: the timeout kills everything it started
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, limits.wallSeconds * 1000);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    clearTimeout(timer);
    if (timedOut) return { outcome: "timeout", detail: `killed after ${limits.wallSeconds} s` };
    return { outcome: code === 0 ? "passed" : "failed", detail: stderr.trim().slice(-500) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The unbiased pass@k estimator of the Codex paper: with n samples of which c pass,
 * 1 − C(n − c, k) / C(n, k), computed as a product to stay finite.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (k > n) throw new TaskError(`pass@${k} needs at least ${k} samples, not ${n}`);
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}
