// bench/gpu's driver (built and run by run.sh on a GPU machine).
//
//   herd-gpu-bench check   every CUDA kernel against engine/ops.h on random inputs, then one
//                          whole training step against the CPU engine (Model + AdamW)
//   herd-gpu-bench speed dim layers heads kv_heads ffn vocab seq micro_batch steps
//                          training throughput of one configuration, one JSON line
//
// Kernel checks: relative error ‖gpu − ref‖ / ‖ref‖ against ops.h in float64 on the same inputs
// (rounded to bf16 first for the bf16 runs, so the error is the kernel's own). Passing:
// fp32 < 1e-5, bf16 < 1e-2. NaN anywhere fails (the outputs are poisoned with NaN first).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/cuda_device.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "herd_cuda.h"

using namespace herd;
using Vec = std::vector<float>;
using DVec = std::vector<double>;

namespace {

int failures = 0;

void ok(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "%s failed: %s\n", what, herd_cuda_last_error());
    std::exit(2);
  }
}

// Random inputs, never zeros: normal(0, scale), and for bf16 runs rounded to bf16.
float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u;  // round to nearest even
  std::memcpy(&x, &u, 4);
  return x;
}
Vec random(Rng& rng, size_t n, double scale, bool bf16, double offset = 0.0) {
  Vec v(n);
  for (float& x : v) {
    x = float(offset + rng.normal() * scale);
    if (bf16) x = round_bf16(x);
  }
  return v;
}
DVec widen(const Vec& v) { return DVec(v.begin(), v.end()); }

// Packed instruction examples: each row of T tokens holds examples of 1 to 90 tokens (so
// some start mid-tile, some span tiles), each token's position in its example.
std::vector<int32_t> packed_positions(Rng& rng, int B, int T) {
  std::vector<int32_t> pos(size_t(B) * T);
  for (int b = 0; b < B; b++)
    for (int t = 0, left = 0, at = 0; t < T; t++, at++, left--) {
      if (left == 0) left = 1 + int(rng.next_u64() % 90), at = 0;
      pos[size_t(b) * T + t] = at;
    }
  return pos;
}

double rel_error(const Vec& got, const DVec& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    if (!std::isfinite(got[i])) return NAN;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

void report(const std::string& name, bool bf16, const Vec& got, const DVec& ref,
            double tolerance = -1) {
  const double limit = tolerance > 0 ? tolerance : (bf16 ? 1e-2 : 1e-5);
  const double err = rel_error(got, ref);
  const bool pass = std::isfinite(err) && err < limit;
  if (!pass) failures++;
  std::printf("%-34s %-5s %10.3e  < %.0e  %s\n", name.c_str(), bf16 ? "bf16" : "fp32", err, limit,
              pass ? "ok" : "FAIL");
}

void check_matmul(Rng& rng, bool bf16) {
  const int m = 192, n = 320, k = 256;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      Vec a = random(rng, size_t(m) * k, 1, bf16), b = random(rng, size_t(k) * n, 1, bf16);
      Vec c0 = random(rng, size_t(m) * n, 1, bf16), c = c0;
      const float beta = ta ? 1.0f : 0.0f;  // the transposed forms accumulate, as dW does
      ok(herd_cuda_check_matmul(bf16, ta, tb, m, n, k, a.data(), b.data(), beta, c.data()),
         "matmul");
      DVec ref = widen(c0), da = widen(a), db = widen(b);
      ops::blas_gemm(ta, tb, m, n, k, 1.0, da.data(), ta ? m : k, db.data(), tb ? k : n, beta,
                     ref.data(), n);
      report(std::string("matmul ") + (ta ? "T" : "N") + (tb ? "T" : "N"), bf16, c, ref);
    }
}

void check_embedding(Rng& rng, bool bf16) {
  const int N = 512, C = 256, V = 97;  // few rows, so tokens repeat
  std::vector<int32_t> tok(N);
  for (auto& t : tok) t = int32_t(rng.next_u64() % V);
  Vec table = random(rng, size_t(V) * C, 1, bf16), dout = random(rng, size_t(N) * C, 1, bf16);
  Vec dtable0 = random(rng, size_t(V) * C, 1, false);
  for (int det = 0; det < 2; det++) {
    Vec out(size_t(N) * C), dtable = dtable0;
    ok(herd_cuda_check_embedding(bf16, det, tok.data(), table.data(), dout.data(), N, C, V,
                                 out.data(), dtable.data()),
       "embedding");
    DVec ref(out.size()), dref = widen(dtable0), dt = widen(table), dd = widen(dout);
    ops::embedding_forward(ref.data(), tok.data(), dt.data(), N, C);
    ops::embedding_backward(dref.data(), dd.data(), tok.data(), N, C);
    if (det == 0) report("embedding forward", bf16, out, ref);
    report(det ? "embedding backward (deterministic)" : "embedding backward (atomic)", bf16,
           dtable, dref);
  }
}

void check_rmsnorm(Rng& rng, bool bf16) {
  const int N = 300, C = 384;
  Vec x = random(rng, size_t(N) * C, 1, bf16), g = random(rng, C, 0.2, bf16, 1.0);
  Vec dout = random(rng, size_t(N) * C, 1, bf16), dx0 = random(rng, size_t(N) * C, 1, bf16);
  Vec dg0 = random(rng, C, 1, false);
  Vec y(x.size()), rstd(N), dx = dx0, dg = dg0;
  ok(herd_cuda_check_rmsnorm(bf16, x.data(), g.data(), dout.data(), N, C, 1e-5f, y.data(),
                             rstd.data(), dx.data(), dg.data()),
     "rmsnorm");
  DVec X = widen(x), G = widen(g), D = widen(dout), Y(x.size()), R(N), DX = widen(dx0),
       DG = widen(dg0);
  ops::rmsnorm_forward(Y.data(), R.data(), X.data(), G.data(), N, C, 1e-5);
  ops::rmsnorm_backward(DX.data(), DG.data(), D.data(), X.data(), G.data(), R.data(), N, C);
  report("rmsnorm forward", bf16, y, Y);
  report("rmsnorm rstd", false, rstd, R, bf16 ? 1e-2 : 1e-5);
  report("rmsnorm backward dx", bf16, dx, DX);
  report("rmsnorm backward dgain", bf16, dg, DG);
}

void check_rope(Rng& rng, bool bf16) {
  const int B = 2, T = 130, H = 3, hd = 64;
  Vec x = random(rng, size_t(B) * T * H * hd, 1, bf16);
  std::vector<double> c, s;
  ops::rope_tables(c, s, T, hd, 10000.0);
  const std::vector<int32_t> packed = packed_positions(rng, B, T);
  for (const int32_t* pos : {static_cast<const int32_t*>(nullptr), packed.data()})
    for (int inv = 0; inv < 2; inv++) {
      Vec y(x.size());
      ok(herd_cuda_check_rope(bf16, x.data(), B, T, H, hd, 10000.0, inv, pos, y.data()), "rope");
      DVec ref = widen(x);
      ops::rope_apply(ref.data(), c.data(), s.data(), B, T, H, hd, inv != 0, pos);
      report(std::string(inv ? "rope backward" : "rope forward") + (pos ? " packed" : ""), bf16, y,
             ref);
    }
}

void check_swiglu(Rng& rng, bool bf16) {
  const size_t n = 100003;
  Vec a = random(rng, n, 2, bf16), b = random(rng, n, 1, bf16), d = random(rng, n, 1, bf16);
  Vec out(n), da(n), db(n);
  ok(herd_cuda_check_swiglu(bf16, a.data(), b.data(), d.data(), n, out.data(), da.data(),
                            db.data()),
     "swiglu");
  DVec A = widen(a), Bv = widen(b), D = widen(d), O(n), DA(n, 0.0), DB(n, 0.0);
  ops::swiglu_forward(O.data(), A.data(), Bv.data(), n);
  ops::swiglu_backward(DA.data(), DB.data(), D.data(), A.data(), Bv.data(), n);
  report("swiglu forward", bf16, out, O);
  report("swiglu backward da", bf16, da, DA);
  report("swiglu backward db", bf16, db, DB);
}

void check_cross_entropy(Rng& rng, bool bf16) {
  const int N = 64, V = 32000;
  Vec z = random(rng, size_t(N) * V, 2, bf16);
  std::vector<int32_t> t(N);
  for (auto& x : t) x = int32_t(rng.next_u64() % V);
  for (int n = 0; n < N; n += 3) t[n] = ops::kIgnoreTarget;  // prompt tokens: not learned
  const float dloss = 1.0f / N;
  Vec losses(N), dz(z.size());
  ok(herd_cuda_check_cross_entropy(bf16, z.data(), t.data(), N, V, dloss, losses.data(),
                                   dz.data()),
     "cross-entropy");
  DVec Z = widen(z), L(N);
  ops::cross_entropy_forward(L.data(), Z.data(), t.data(), N, V);
  ops::cross_entropy_backward_inplace(Z.data(), t.data(), N, V, double(dloss));
  report("cross-entropy forward", bf16, losses, L);
  report("cross-entropy backward", bf16, dz, Z);
}

// variant as herd_cuda_check_attention: 0 fp32, 1 bf16 on tensor cores, 2 bf16 on CUDA cores.
// packed: rows of examples (packed_positions), attention inside each.
void check_attention(Rng& rng, int variant, int hd, int H, int KVH, int T, bool packed = false) {
  const bool bf16 = variant != 0;
  const int B = 2;
  const std::vector<int32_t> positions = packed_positions(rng, B, T);
  const int32_t* pos = packed ? positions.data() : nullptr;
  const size_t nq = size_t(B) * T * H * hd, nkv = size_t(B) * T * KVH * hd;
  Vec q = random(rng, nq, 1, bf16), k = random(rng, nkv, 1, bf16), v = random(rng, nkv, 1, bf16);
  Vec dout = random(rng, nq, 1, bf16);
  Vec out(nq), lse(size_t(B) * H * T), dq(nq), dk(nkv), dv(nkv);
  ok(herd_cuda_check_attention(variant, q.data(), k.data(), v.data(), dout.data(), pos, B, T, H,
                               KVH, hd, out.data(), lse.data(), dq.data(), dk.data(), dv.data()),
     "attention");
  DVec Q = widen(q), K = widen(k), Vv = widen(v), D = widen(dout), O(nq), L(lse.size());
  DVec DQ(nq, 0.0), DK(nkv, 0.0), DV(nkv, 0.0);
  ops::attention_forward(O.data(), L.data(), Q.data(), K.data(), Vv.data(), B, T, H, KVH, hd, pos);
  ops::attention_backward(DQ.data(), DK.data(), DV.data(), D.data(), Q.data(), K.data(), Vv.data(),
                          O.data(), L.data(), B, T, H, KVH, hd, pos);
  const std::string tag = " hd" + std::to_string(hd) + " H" + std::to_string(H) + "/" +
                          std::to_string(KVH) + " T" + std::to_string(T) +
                          (variant == 1 ? " tc" : variant == 2 ? " simt" : "") +
                          (packed ? " packed" : "");
  report("attention out" + tag, bf16, out, O);
  report("attention lse" + tag, bf16, lse, L);
  report("attention dq" + tag, bf16, dq, DQ);
  report("attention dk" + tag, bf16, dk, DK);
  report("attention dv" + tag, bf16, dv, DV);
}

void check_adamw(Rng& rng) {
  const size_t n = 50001;
  Vec g = random(rng, n, 1e-2, false), p = random(rng, n, 0.02, false);
  Vec m = random(rng, n, 1e-3, false), v(n);
  for (size_t i = 0; i < n; i++) v[i] = float(1e-5 * (1.0 + rng.uniform()));
  const herd_cuda_adamw c{3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0};
  const float scale = 0.5f;
  Vec gp = p, gm = m, gv = v;
  ok(herd_cuda_check_adamw(g.data(), gp.data(), gm.data(), gv.data(), n, 1, &c, 3, scale),
     "adamw");
  // optimizer.cc's arithmetic in double, on gradients scaled as the trainer's clipping does.
  DVec P = widen(p), M = widen(m), Vv = widen(v);
  const double bias1 = 1 - std::pow(c.beta1, 3), bias2 = 1 - std::pow(c.beta2, 3);
  for (size_t i = 0; i < n; i++) {
    const double gi = double(g[i]) * scale;
    P[i] *= 1 - c.lr * c.weight_decay;
    M[i] += (1 - c.beta1) * (gi - M[i]);
    Vv[i] = Vv[i] * c.beta2 + (1 - c.beta2) * gi * gi;
    P[i] -= c.lr / bias1 * (M[i] / (std::sqrt(Vv[i]) / std::sqrt(bias2) + c.eps));
  }
  report("adamw params", false, gp, P);
  report("adamw m", false, gm, M);
  report("adamw v", false, gv, Vv);
  double norm = 0;
  ok(herd_cuda_check_grad_norm(g.data(), n, &norm), "grad norm");
  std::vector<float> gv2(g.begin(), g.end());
  report("grad norm", false, Vec{float(norm)}, DVec{grad_norm(gv2)});
}

// ---- the whole training step ---------------------------------------------------------------

using Desc = herd::CudaModelDesc;  // engine/cuda_device.h: the trainer's own description

// A checkpoint and a resume through the C API: the weights and AdamW's state copied to the
// host and into a model created from other weights; one more step on each (the run is
// deterministic) must give the same bits.
void check_resume(herd_cuda_model* gpu, const Desc& d, const herd_cuda_run_config& run,
                  const std::vector<int32_t>& tok, const std::vector<int32_t>& tgt, int B, int T,
                  int K, const herd_cuda_adamw& gc, bool bf16) {
  const size_t P = d.layout.size();
  Vec params(P), m(P), v(P), zeros(P, 0.0f);
  int64_t steps = 0;
  ok(herd_cuda_get_params(gpu, params.data()), "resume: params");
  ok(herd_cuda_get_optimizer_state(gpu, m.data(), v.data(), &steps), "resume: get state");
  herd_cuda_model* copy = nullptr;
  ok(herd_cuda_model_create(&d.desc, &run, zeros.data(), &copy), "resume: create");
  ok(herd_cuda_set_params(copy, params.data()), "resume: set params");
  ok(herd_cuda_set_optimizer_state(copy, m.data(), v.data(), steps), "resume: set state");
  auto one_step = [&](herd_cuda_model* g) {
    ok(herd_cuda_zero_grad(g), "resume: zero grad");
    for (int k = 0; k < K; k++) {
      const size_t off = size_t(k) * B * T;
      ok(herd_cuda_forward(g, tok.data() + off, tgt.data() + off, nullptr, B, T, nullptr),
         "resume: forward");
      ok(herd_cuda_backward(g, 1.0f / float(K * B * T), k == K - 1), "resume: backward");
    }
    ok(herd_cuda_step(g, &gc, nullptr), "resume: step");
    Vec out(P);
    ok(herd_cuda_get_params(g, out.data()), "resume: params after");
    return out;
  };
  const Vec a = one_step(gpu), b = one_step(copy);
  herd_cuda_model_destroy(copy);
  const bool same = std::memcmp(a.data(), b.data(), P * sizeof(float)) == 0 && steps == 1;
  if (!same) failures++;
  std::printf("%-34s %-5s %10s  %-7s %s\n", "resume (state via host)", bf16 ? "bf16" : "fp32",
              same ? "identical" : "differs", "", same ? "ok" : "FAIL");
}

// One step (two micro-batches) on the CPU engine and on the GPU from the same weights;
// compares the loss, the gradients and the updated weights. nccl: 0 none, 1 all-reduce
// buckets, 2 sharded optimizer (world of one: the result must not change). packed: rows of
// instruction examples (positions), a third of the targets not learned.
void check_step(bool bf16, bool tied, int nccl, bool recompute, bool packed = false) {
  ModelConfig c;
  c.dim = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.ffn_hidden = 704;
  c.vocab_size = 512, c.max_seq_len = 160, c.tied_embeddings = tied;
  const int B = 2, T = 160, K = 2;
  Model<float> cpu(c);
  cpu.init_weights(7);
  Desc d(c);
  herd_cuda_run_config run{0, B, T, bf16 ? 1 : 0, recompute ? 1 : 0, 1};
  herd_cuda_model* gpu = nullptr;
  ok(herd_cuda_model_create(&d.desc, &run, cpu.params.data(), &gpu), "model create");
  if (nccl) {
    unsigned char id[HERD_CUDA_NCCL_ID_BYTES];
    ok(herd_cuda_nccl_unique_id(id), "nccl id");
    ok(herd_cuda_nccl_attach(gpu, id, 0, 1, nccl == 2), "nccl attach");
  }
  Rng rng(11);
  std::vector<int32_t> tok(size_t(K) * B * T), tgt(tok.size());
  for (auto& t : tok) t = int32_t(rng.next_u64() % c.vocab_size);
  for (auto& t : tgt) t = int32_t(rng.next_u64() % c.vocab_size);
  const std::vector<int32_t> positions = packed_positions(rng, K * B, T);
  if (packed)
    for (size_t n = 0; n < tgt.size(); n += 3) tgt[n] = ops::kIgnoreTarget;
  const int32_t* pos = packed ? positions.data() : nullptr;

  // As Trainer::step: the loss is the mean over the step's learned targets.
  size_t learned = 0;
  for (int32_t t : tgt) learned += t >= 0;
  double cpu_loss = 0, gpu_loss = 0;
  cpu.zero_grad();
  ok(herd_cuda_zero_grad(gpu), "zero grad");
  for (int k = 0; k < K; k++) {
    const size_t off = size_t(k) * B * T;
    const int32_t* p = pos ? pos + off : nullptr;
    cpu_loss += cpu.forward(tok.data() + off, tgt.data() + off, B, T, p) *
                double(cpu.learned_targets()) / double(learned);
    cpu.backward(1.0f / float(learned));
    double l = 0;
    ok(herd_cuda_forward(gpu, tok.data() + off, tgt.data() + off, p, B, T, &l), "forward");
    gpu_loss += l * double(cpu.learned_targets()) / double(learned);
    ok(herd_cuda_backward(gpu, 1.0f / float(learned), k == K - 1), "backward");
  }
  Vec grads(cpu.num_parameters());
  ok(herd_cuda_get_grads(gpu, grads.data()), "grads");
  // CPU update exactly as Trainer::update: clip, AdamW; once from the CPU's gradients and
  // once from the GPU's own (on a copy), which isolates the step from gradient rounding.
  OptimizerConfig oc;
  oc.peak_lr = 1e-3, oc.warmup_steps = 1, oc.grad_clip = 0.5;
  const double lr = learning_rate(oc, 0);
  const DVec cpu_grads = widen(cpu.grads);
  const Vec before = cpu.params;
  auto cpu_step = [&](Model<float>& m) {
    const double norm = herd::grad_norm(m.grads);
    if (oc.grad_clip / (norm + 1e-6) < 1.0) herd::scale(m.grads, float(oc.grad_clip / (norm + 1e-6)));
    AdamW adamw(m.num_parameters());
    adamw.update(m, oc, lr);
    return norm;
  };
  const double norm = cpu_step(cpu);
  Model<float> own(c);
  own.params = before;
  own.grads = grads;
  cpu_step(own);
  const herd_cuda_adamw gc{lr, oc.beta1, oc.beta2, oc.eps, oc.weight_decay, oc.grad_clip};
  double gpu_norm = 0;
  ok(herd_cuda_step(gpu, &gc, &gpu_norm), "step");
  Vec after(cpu.num_parameters());
  ok(herd_cuda_get_params(gpu, after.data()), "params");
  if (!nccl && !packed) check_resume(gpu, d, run, tok, tgt, B, T, K, gc, bf16);
  herd_cuda_model_destroy(gpu);

  DVec delta_ref(after.size()), delta_own(after.size());
  Vec delta(after.size());
  for (size_t i = 0; i < after.size(); i++) {
    delta_ref[i] = double(cpu.params[i]) - before[i];
    delta_own[i] = double(own.params[i]) - before[i];
    delta[i] = after[i] - before[i];
  }
  // AdamW's first step moves a weight by about lr·sign(g): where |g| is near zero, rounding
  // of the gradient flips the sign (bf16: about 0.3 % of the entries here; fp32's other
  // summation orders: a few), an error of 2·lr each that says nothing about the kernels. The
  // end-to-end update is compared where the gradient's sign is robust (|g| above 5 % of its
  // RMS); the step itself, in full, from the GPU's own gradients.
  double g2 = 0;
  for (double g : cpu_grads) g2 += g * g;
  const double robust = 0.05 * std::sqrt(g2 / double(cpu_grads.size()));
  Vec delta_robust;
  DVec delta_ref_robust;
  for (size_t i = 0; i < after.size(); i++)
    if (std::abs(cpu_grads[i]) > robust) {
      delta_robust.push_back(delta[i]);
      delta_ref_robust.push_back(delta_ref[i]);
    }
  std::string tag = std::string("step ") + (tied ? "tied" : "untied") +
                    (recompute ? " recompute" : "") + (packed ? " packed" : "") +
                    (nccl == 1 ? " nccl" : nccl == 2 ? " nccl-sharded" : "");
  // Against the CPU engine in fp32 (not float64): different summation orders alone give
  // ~1e-6, so fp32 limits here are 1e-4; bf16 keeps 1e-2.
  const double lim = bf16 ? 1e-2 : 1e-4;
  report(tag + " loss", bf16, Vec{float(gpu_loss)}, DVec{cpu_loss}, lim);
  report(tag + " grads", bf16, grads, cpu_grads, lim);
  report(tag + " grad norm", bf16, Vec{float(gpu_norm)}, DVec{norm}, lim);
  report(tag + " update, |g| > 5% rms", bf16, delta_robust, delta_ref_robust,
         bf16 ? 5e-2 : 1e-4);
  report(tag + " update from own grads", bf16, delta, delta_own, 1e-4);
}

// ---- speed -----------------------------------------------------------------------------

int speed(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: speed dim layers heads kv_heads ffn vocab seq micro_batch steps\n");
    return 2;
  }
  ModelConfig c;
  c.dim = std::atoi(argv[2]), c.n_layers = std::atoi(argv[3]), c.n_heads = std::atoi(argv[4]);
  c.n_kv_heads = std::atoi(argv[5]), c.ffn_hidden = std::atoi(argv[6]);
  c.vocab_size = std::atoi(argv[7]), c.max_seq_len = std::atoi(argv[8]);
  const int T = c.max_seq_len, B = std::atoi(argv[9]), steps = std::atoi(argv[10]);
  c.validate();
  Desc d(c);
  const size_t P = d.layout.size();
  Vec params(P);
  Rng rng(1);
  for (auto& x : params) x = float((rng.uniform() - 0.5) * 0.04);
  for (const auto& t : d.layout.tensors)
    if (!t.decay) std::fill(params.begin() + t.offset, params.begin() + t.offset + t.size, 1.0f);
  herd_cuda_run_config run{0, B, T, 1, 0, 0};
  herd_cuda_model* gpu = nullptr;
  ok(herd_cuda_model_create(&d.desc, &run, params.data(), &gpu), "model create");
  std::vector<int32_t> tok(size_t(B) * T), tgt(tok.size());
  for (auto& t : tok) t = int32_t(rng.next_u64() % c.vocab_size);
  for (auto& t : tgt) t = int32_t(rng.next_u64() % c.vocab_size);
  const herd_cuda_adamw oc{3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0};
  auto one_step = [&] {
    double loss = 0, norm = 0;
    ok(herd_cuda_zero_grad(gpu), "zero grad");
    ok(herd_cuda_forward(gpu, tok.data(), tgt.data(), nullptr, B, T, &loss), "forward");
    ok(herd_cuda_backward(gpu, 1.0f / float(B * T), 1), "backward");
    ok(herd_cuda_step(gpu, &oc, &norm), "step");
    return loss;
  };
  for (int i = 0; i < 2; i++) one_step();  // warm-up: handles, heuristics, first-touch
  ok(herd_cuda_synchronize(gpu), "sync");
  const auto t0 = std::chrono::steady_clock::now();
  double loss = 0;
  for (int i = 0; i < steps; i++) loss = one_step();
  ok(herd_cuda_synchronize(gpu), "sync");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // N: parameters in matrix products (the input embedding table is a lookup unless tied).
  const double n_matmul = double(P) - (c.tied_embeddings ? 0.0 : double(c.vocab_size) * c.dim);
  std::printf(
      "{\"impl\":\"herd\",\"params\":%zu,\"n_matmul\":%.0f,\"batch\":%d,\"seq\":%d,"
      "\"tokens_per_s\":%.1f,\"peak_bytes\":%zu,\"loss\":%.4f}\n",
      P, n_matmul, B, T, double(B) * T * steps / secs, herd_cuda_model_bytes(gpu), loss);
  herd_cuda_model_destroy(gpu);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (herd_cuda_device_count() == 0) {
    std::fprintf(stderr, "no CUDA device visible: bench/gpu runs on a GPU machine\n");
    return 2;
  }
  if (mode == "speed") return speed(argc, argv);
  if (mode != "check") {
    std::fprintf(stderr, "usage: %s check | speed …\n", argv[0]);
    return 2;
  }
  Rng rng(2024);
  std::printf("%-34s %-5s %10s  %-7s %s\n", "check", "type", "rel.err", "limit", "result");
  for (int bf16 = 0; bf16 < 2; bf16++) {
    check_matmul(rng, bf16);
    check_embedding(rng, bf16);
    check_rmsnorm(rng, bf16);
    check_rope(rng, bf16);
    check_swiglu(rng, bf16);
    check_cross_entropy(rng, bf16);
    // fp32 once; bf16 on tensor cores and on the CUDA cores (the HERD_CUDA_ATTENTION=simt
    // fallback), whatever the environment says.
    for (int variant : bf16 ? std::vector<int>{1, 2} : std::vector<int>{0}) {
      check_attention(rng, variant, 64, 4, 2, 200);   // GQA, T not a multiple of the tile
      check_attention(rng, variant, 128, 2, 2, 128);
      check_attention(rng, variant, 128, 4, 1, 130);  // GQA 4:1 at hd 128, a 2-row last tile
      check_attention(rng, variant, 64, 4, 2, 200, true);  // packed instruction examples
    }
  }
  check_adamw(rng);
  for (int bf16 = 0; bf16 < 2; bf16++) {
    check_step(bf16, false, 0, false);
    check_step(bf16, true, 0, true);
    check_step(bf16, false, 0, false, true);
  }
  if (herd_cuda_nccl_available()) {
    check_step(true, false, 1, false);
    check_step(true, false, 2, false);
  } else {
    std::printf("nccl: libnccl.so.2 not found, the NCCL paths were not checked\n");
  }
  std::printf("%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
