// Finite-difference gradient checks in double precision: every op of engine/ops.h and the
// whole model (tied and untied, grouped-query attention, sequences longer than one key tile),
// instantiated with T = double — the same templates the fp32 engine trains with.
//
// For an op y = f(x) the scalar checked is L = Σ y ⊙ R with a fixed random R, so the analytic
// gradient is backward(dy = R); the numeric one is (L(x + h) − L(x − h)) / 2h per element.
// Prints one JSON line per check: {"check": name, "maxRelError": e, "count": n}; the driver is
// test/engine/gradcheck.test.ts.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/ops.h"
#include "engine/rng.h"

using namespace herd;
using Vec = std::vector<double>;

static Rng rng(1234);
static Vec random_vec(size_t n, double scale = 1.0) {
  Vec v(n);
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}
static double dot_all(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

static void report(const std::string& name, double err, size_t count) {
  std::printf("{\"check\":\"%s\",\"maxRelError\":%.3e,\"count\":%zu}\n", name.c_str(), err, count);
}

// Compares an analytic gradient of `loss` with respect to x against central differences on
// up to `samples` evenly spread elements of x.
static void check(const std::string& name, Vec& x, const Vec& analytic,
                  const std::function<double()>& loss, size_t samples = 64) {
  const double h = 1e-5;
  // Errors are relative to the element, but never to less than 1e-4 of the tensor's largest
  // gradient: near-zero entries carry only rounding noise from the differences.
  double largest = 0;
  for (double g : analytic) largest = std::max(largest, std::fabs(g));
  const double floor = std::max(1e-4 * largest, 1e-12);
  double worst = 0;
  size_t stride = std::max<size_t>(1, x.size() / samples), count = 0;
  for (size_t i = 0; i < x.size(); i += stride, count++) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double err =
        std::fabs(numeric - analytic[i]) / std::max({std::fabs(numeric), std::fabs(analytic[i]), floor});
    worst = std::max(worst, err);
  }
  report(name, worst, count);
}

static void check_linear() {
  const int N = 5, C = 7, OC = 6;
  Vec x = random_vec(N * C), w = random_vec(OC * C), R = random_vec(N * OC), y(N * OC);
  auto loss = [&] { ops::linear_forward(y.data(), x.data(), w.data(), N, C, OC); return dot_all(y, R); };
  Vec dx(N * C, 0), dw(OC * C, 0);
  ops::linear_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), N, C, OC);
  check("linear.dx", x, dx, loss);
  check("linear.dw", w, dw, loss);
}

static void check_embedding() {
  const int N = 6, C = 4, V = 5;
  std::vector<int32_t> tokens = {0, 3, 3, 1, 4, 3};  // repeats must add up
  Vec table = random_vec(V * C), R = random_vec(N * C), y(N * C);
  auto loss = [&] { ops::embedding_forward(y.data(), tokens.data(), table.data(), N, C); return dot_all(y, R); };
  Vec dtable(V * C, 0);
  ops::embedding_backward(dtable.data(), R.data(), tokens.data(), N, C);
  check("embedding.dtable", table, dtable, loss);
}

static void check_rmsnorm() {
  const int N = 4, C = 9;
  Vec x = random_vec(N * C), g = random_vec(C), R = random_vec(N * C), y(N * C), rstd(N);
  auto loss = [&] {
    ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), g.data(), N, C, 1e-5);
    return dot_all(y, R);
  };
  loss();
  Vec dx(N * C, 0), dg(C, 0);
  ops::rmsnorm_backward(dx.data(), dg.data(), R.data(), x.data(), g.data(), rstd.data(), N, C);
  check("rmsnorm.dx", x, dx, loss);
  check("rmsnorm.dg", g, dg, loss);
}

static void check_rope() {
  const int B = 2, T = 5, H = 3, hd = 8;
  Vec cos_t, sin_t;
  ops::rope_tables(cos_t, sin_t, 16, hd, 10000.0);
  Vec x = random_vec(B * T * H * hd), R = random_vec(x.size());
  auto loss = [&] {
    Vec y = x;
    ops::rope_apply(y.data(), cos_t.data(), sin_t.data(), B, T, H, hd, false);
    return dot_all(y, R);
  };
  Vec dx = R;
  ops::rope_apply(dx.data(), cos_t.data(), sin_t.data(), B, T, H, hd, true);
  check("rope.dx", x, dx, loss);
}

// The blocked online-softmax attention against the textbook one that builds the T×T matrix.
static void check_attention() {
  const int B = 2, T = ops::kKeyTile + 9, H = 4, Hkv = 2, hd = 6;  // two key tiles, GQA
  const size_t qn = size_t(B) * T * H * hd, kvn = size_t(B) * T * Hkv * hd;
  Vec q = random_vec(qn), k = random_vec(kvn), v = random_vec(kvn), R = random_vec(qn);
  Vec out(qn), lse(size_t(B) * H * T);
  auto loss = [&] {
    ops::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, hd);
    return dot_all(out, R);
  };
  loss();
  // naive reference
  double worst = 0;
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        const int kvh = h / (H / Hkv);
        Vec s(t + 1);
        double m = -1e300;
        for (int j = 0; j <= t; j++) {
          s[j] = 0;
          for (int i = 0; i < hd; i++)
            s[j] += q[((size_t(b) * T + t) * H + h) * hd + i] * k[((size_t(b) * T + j) * Hkv + kvh) * hd + i];
          s[j] *= scale;
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (int j = 0; j <= t; j++) z += std::exp(s[j] - m);
        for (int i = 0; i < hd; i++) {
          double o = 0;
          for (int j = 0; j <= t; j++) o += std::exp(s[j] - m) / z * v[((size_t(b) * T + j) * Hkv + kvh) * hd + i];
          const double got = out[((size_t(b) * T + t) * H + h) * hd + i];
          worst = std::max(worst, std::fabs(got - o) / std::max(std::fabs(o), 1e-6));
        }
      }
  report("attention.forward_vs_naive", worst, qn);
  Vec dq(qn, 0), dk(kvn, 0), dv(kvn, 0);
  ops::attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(),
                          out.data(), lse.data(), B, T, H, Hkv, hd);
  check("attention.dq", q, dq, loss);
  check("attention.dk", k, dk, loss);
  check("attention.dv", v, dv, loss);
}

static void check_swiglu() {
  const size_t n = 40;
  Vec a = random_vec(n, 2.0), b = random_vec(n), R = random_vec(n), y(n);
  auto loss = [&] { ops::swiglu_forward(y.data(), a.data(), b.data(), n); return dot_all(y, R); };
  Vec da(n, 0), db(n, 0);
  ops::swiglu_backward(da.data(), db.data(), R.data(), a.data(), b.data(), n);
  check("swiglu.da", a, da, loss);
  check("swiglu.db", b, db, loss);
}

static void check_cross_entropy() {
  const int N = 5, V = 13;
  Vec logits = random_vec(N * V, 3.0), losses(N);
  std::vector<int32_t> targets = {0, 12, 5, 5, 7};
  auto loss = [&] {
    ops::cross_entropy_forward(losses.data(), logits.data(), targets.data(), N, V);
    double s = 0;
    for (double l : losses) s += l;
    return s / N;
  };
  Vec d = logits;
  ops::cross_entropy_backward_inplace(d.data(), targets.data(), N, V, 1.0 / N);
  check("cross_entropy.dlogits", logits, d, loss);
}

// The whole model: mean cross-entropy of a batch, every parameter tensor checked.
static void check_model(bool tied) {
  ModelConfig c;
  c.dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.ffn_hidden = 40;
  c.vocab_size = 17, c.max_seq_len = ops::kKeyTile + 16, c.tied_embeddings = tied;
  Model<double> model(c);
  model.init_weights(7);
  // Larger weights than the training init, so every path carries a gradient well above h.
  Rng r(99);
  for (const auto& t : model.tensors())
    for (size_t i = 0; i < t.size; i++)
      model.params[t.offset + i] = t.shape.size() == 1 ? 1.0 + 0.3 * r.normal() : 0.3 * r.normal();
  const int B = 2, T = ops::kKeyTile + 6;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (int i = 0; i < B * T; i++) tokens[i] = int32_t(r.next_u64() % c.vocab_size),
                                  targets[i] = int32_t(r.next_u64() % c.vocab_size);
  auto loss = [&] { return model.forward(tokens.data(), targets.data(), B, T); };
  loss();
  model.zero_grad();
  model.backward(1.0 / (B * T));
  const Vec grads = model.grads;
  for (const auto& t : model.tensors()) {
    Vec x(model.params.begin() + t.offset, model.params.begin() + t.offset + t.size);
    Vec g(grads.begin() + t.offset, grads.begin() + t.offset + t.size);
    auto tensor_loss = [&] {
      std::copy(x.begin(), x.end(), model.params.begin() + t.offset);
      return loss();
    };
    check(std::string(tied ? "model.tied." : "model.untied.") + t.name, x, g, tensor_loss, 12);
    std::copy(x.begin(), x.end(), model.params.begin() + t.offset);
  }
}

int main() {
  check_linear();
  check_embedding();
  check_rmsnorm();
  check_rope();
  check_attention();
  check_swiglu();
  check_cross_entropy();
  check_model(false);
  check_model(true);
  return 0;
}
