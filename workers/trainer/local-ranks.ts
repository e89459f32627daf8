// The processes of one trainer pod (workers/trainer/pod.ts): one per GPU.

/** One trainer process per GPU (one for a CPU pod), each a rank of the job's group. */
export interface LocalRank {
  env: NodeJS.ProcessEnv;
  args: string[];
}

/**
 * The pod's processes, as torchrun's --nproc-per-node: with G GPUs, pod p of P runs ranks
 * p·G … p·G + G − 1 of a group of P·G, process i on device i of the pod's GPUs. The pod's
 * own HERD_RANK and HERD_WORLD_SIZE count pods; HERD_RENDEZVOUS stays rank 0's (local
 * rank 0 of pod 0), and the pod's CPU threads are shared out.
 */
export function localRanks(
  env: NodeJS.ProcessEnv,
  gpusPerWorker: number,
  trainArgs: string[],
): LocalRank[] {
  const podRank = Number(env.HERD_RANK ?? "0");
  const pods = Number(env.HERD_WORLD_SIZE ?? "1");
  const perPod = Math.max(gpusPerWorker, 1);
  const threads = Math.max(1, Math.floor(Number(env.HERD_TRAINER_THREADS ?? "1") / perPod));
  return Array.from({ length: perPod }, (_, local) => {
    const args = [...trainArgs, "--threads", String(threads)];
    if (gpusPerWorker > 0) args.push("--backend", "cuda", "--device", String(local));
    if (perPod === 1) return { env, args };
    return {
      env: {
        ...env,
        HERD_RANK: String(podRank * perPod + local),
        HERD_WORLD_SIZE: String(pods * perPod),
        // One pod alone has no peers to find it by name; its processes meet on loopback.
        HERD_RENDEZVOUS: env.HERD_RENDEZVOUS || "127.0.0.1",
      },
      args,
    };
  });
}
