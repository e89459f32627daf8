// Runs native/cuda/attention_tc.cu's tensor-core kernels on the CPU emulation (the source as
// sources.ts prepares it, found on the include path; test/native/attention-emulation.test.ts)
// and prints the relative error ‖x − ref‖/‖ref‖ of each output against a float64 causal
// attention: out, lse, dq, dk, dv. Inputs are random bf16 values laid out as the model's
// interleaved q|k|v rows; outputs start as NaN, so an element no kernel wrote makes its error
// NaN.
//   attention_tc_check <head_dim> <heads> <kv_heads> <T> <B>
#include "attention_tc.cu"

#include <cstdio>
#include <random>

using namespace herd::cuda;

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// Causal attention with grouped-query heads and its gradients, in float64, as written.
Reference reference(const std::vector<float>& Q, const std::vector<float>& K,
                    const std::vector<float>& V, const std::vector<float>& dO, int B, int T,
                    int H, int KVH, int hd) {
  Reference r;
  r.out.assign(size_t(B) * T * H * hd, 0);
  r.dq.assign(r.out.size(), 0);
  r.lse.assign(size_t(B) * H * T, 0);
  r.dk.assign(size_t(B) * T * KVH * hd, 0);
  r.dv.assign(r.dk.size(), 0);
  const double scale = 1.0 / std::sqrt(double(hd));
  auto at_q = [&](int b, int t, int h, int x) { return ((size_t(b) * T + t) * H + h) * hd + x; };
  auto at_kv = [&](int b, int t, int h, int x) { return ((size_t(b) * T + t) * KVH + h) * hd + x; };
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int kvh = h / (H / KVH);
      for (int i = 0; i < T; i++) {
        std::vector<double> p(i + 1), dp(i + 1);
        double m = -1e300, l = 0, D = 0;
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int x = 0; x < hd; x++) s += double(Q[at_q(b, i, h, x)]) * K[at_kv(b, j, kvh, x)];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        for (int j = 0; j <= i; j++) l += p[j] = std::exp(p[j] - m);
        for (int j = 0; j <= i; j++) p[j] /= l;
        r.lse[(size_t(b) * H + h) * T + i] = m + std::log(l);
        for (int x = 0; x < hd; x++) {
          double o = 0;
          for (int j = 0; j <= i; j++) o += p[j] * V[at_kv(b, j, kvh, x)];
          r.out[at_q(b, i, h, x)] = o;
          D += dO[at_q(b, i, h, x)] * o;
        }
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int x = 0; x < hd; x++) s += double(dO[at_q(b, i, h, x)]) * V[at_kv(b, j, kvh, x)];
          const double ds = p[j] * (s - D) * scale;
          for (int x = 0; x < hd; x++) {
            r.dq[at_q(b, i, h, x)] += ds * K[at_kv(b, j, kvh, x)];
            r.dk[at_kv(b, j, kvh, x)] += ds * Q[at_q(b, i, h, x)];
            r.dv[at_kv(b, j, kvh, x)] += p[j] * dO[at_q(b, i, h, x)];
          }
        }
      }
    }
  return r;
}

double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) return NAN;
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / (norm > 0 ? norm : 1));
}

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: attention_tc_check <head_dim> <heads> <kv_heads> <T> <B>\n");
    return 2;
  }
  const int hd = std::atoi(argv[1]), H = std::atoi(argv[2]), KVH = std::atoi(argv[3]);
  const int T = std::atoi(argv[4]), B = std::atoi(argv[5]);
  const int W = (H + 2 * KVH) * hd;  // a qkv row: q | k | v
  const size_t N = size_t(B) * T;
  const bf16 nan{0x7FC0};
  auto to_f = [](bf16 x) { return __bfloat162float(x); };
  auto from_f = [](float x) { return __float2bfloat16_rn(x); };

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 1);
  std::vector<bf16> qkv(N * W), dout(N * H * hd), out(N * H * hd, nan), dqkv(N * W, nan);
  std::vector<float> Q(N * H * hd), K(N * KVH * hd), V(N * KVH * hd), dO(N * H * hd);
  for (size_t n = 0; n < N; n++)
    for (int c = 0; c < W; c++) {
      const bf16 x = from_f(normal(rng));
      qkv[n * W + c] = x;
      if (c < H * hd) Q[n * H * hd + c] = to_f(x);
      else if (c < (H + KVH) * hd) K[n * KVH * hd + c - H * hd] = to_f(x);
      else V[n * KVH * hd + c - (H + KVH) * hd] = to_f(x);
    }
  for (size_t i = 0; i < dout.size(); i++) dO[i] = to_f(dout[i] = from_f(normal(rng)));

  const AttentionShape a{B, T, H, KVH, hd, W, W, H * hd};
  const bf16 *q = qkv.data(), *k = q + H * hd, *v = k + KVH * hd;
  std::vector<float> lse(size_t(B) * H * T, NAN), dsum(lse.size());
  attention_forward_tc(nullptr, a, out.data(), lse.data(), q, k, v);
  // D = rowsum(dO∘O) from the bf16 output, as attention.cu's dsum kernel computes it.
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        float s = 0;
        for (int x = 0; x < hd; x++) {
          const size_t at = (size_t(b) * T + t) * H * hd + h * hd + x;
          s += to_f(dout[at]) * to_f(out[at]);
        }
        dsum[(size_t(b) * H + h) * T + t] = s;
      }
  bf16 *dq = dqkv.data(), *dk = dq + H * hd, *dv = dk + KVH * hd;
  attention_backward_tc(nullptr, a, dq, dk, dv, dsum.data(), dout.data(), q, k, v, lse.data());

  const Reference r = reference(Q, K, V, dO, B, T, H, KVH, hd);
  std::vector<float> o(N * H * hd), gq(N * H * hd), gk(N * KVH * hd), gv(N * KVH * hd);
  for (size_t i = 0; i < o.size(); i++) o[i] = to_f(out[i]);
  for (size_t n = 0; n < N; n++)
    for (int c = 0; c < W; c++) {
      const float x = to_f(dqkv[n * W + c]);
      if (c < H * hd) gq[n * H * hd + c] = x;
      else if (c < (H + KVH) * hd) gk[n * KVH * hd + c - H * hd] = x;
      else gv[n * KVH * hd + c - (H + KVH) * hd] = x;
    }
  std::printf("out %.3e lse %.3e dq %.3e dk %.3e dv %.3e launches %ld\n",
              relative_error(o, r.out), relative_error(lse, r.lse), relative_error(gq, r.dq),
              relative_error(gk, r.dk), relative_error(gv, r.dv), emu::launches);
  return 0;
}
