/* herd's CUDA backend: the C API that the engine reaches through dlopen (libherd_cuda.so).
 *
 * Plain C, no CUDA headers, so the C++ engine and test programs include it without nvcc.
 * Every function returns 0 on success or a negative code; herd_cuda_last_error() then says
 * what failed (the CUDA/cuBLAS/NCCL call and its message) for the calling thread.
 *
 * The model is the CPU engine's (native/src/engine/model.h): the same parameters in the same
 * flat layout (ParamLayout), passed here as a table of offsets so this library carries no
 * engine code. Precision: fp32 master weights, fp32 gradients and AdamW moments; matrix
 * products and activations in bf16 (or fp32, for checks), accumulation in fp32. */
#ifndef HERD_CUDA_H
#define HERD_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Offsets (in elements of the flat parameter buffer) of one transformer block's tensors,
 * as ParamLayout::Layer. wq, wk, wv must be adjacent (ParamLayout puts them so): the
 * backend multiplies by the three as one [dim + 2·kv_dim, dim] matrix. */
typedef struct {
  size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
} herd_cuda_layer;

/* One parameter tensor: where it lives and whether weight decay applies to it. */
typedef struct {
  size_t offset, size;
  int decay;
} herd_cuda_tensor;

typedef struct {
  /* ModelConfig */
  int dim, n_layers, n_heads, n_kv_heads, ffn_hidden, vocab_size, max_seq_len;
  double norm_eps, rope_theta;
  int tied_embeddings;
  /* ParamLayout */
  size_t n_params, tok_embeddings, norm, output;
  const herd_cuda_layer* layers; /* n_layers entries */
  const herd_cuda_tensor* tensors;
  int n_tensors;
} herd_cuda_model_desc;

typedef struct {
  int device;        /* CUDA device ordinal */
  int micro_batch;   /* largest B a forward will be given */
  int seq_len;       /* largest T */
  int bf16;          /* 1: bf16 activations and matrix operands; 0: fp32 throughout (checks) */
  int recompute;     /* 1: keep fewer activations, recompute the norms and SwiGLU in backward */
  int deterministic; /* 1: no atomics anywhere; same inputs give the same bits */
} herd_cuda_run_config;

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
  double grad_clip; /* global L2 norm; 0 disables */
} herd_cuda_adamw;

typedef struct herd_cuda_model herd_cuda_model;

const char* herd_cuda_last_error(void);
int herd_cuda_device_count(void);

/* Creates the model on the device from fp32 weights in ParamLayout order (desc->n_params). */
int herd_cuda_model_create(const herd_cuda_model_desc* desc, const herd_cuda_run_config* run,
                           const float* params, herd_cuda_model** out);
void herd_cuda_model_destroy(herd_cuda_model* model);

/* Forward over tokens[B·T]; with targets, the mean cross-entropy over the learned targets in
 * *mean_loss (a target of −1 is not learned). positions (optional, [B·T]) packs examples into
 * rows: each token's position in its example, 0 where one starts; attention stays inside each.
 * Keeps what backward needs, as Model::forward. */
int herd_cuda_forward(herd_cuda_model* model, const int32_t* tokens, const int32_t* targets,
                      const int32_t* positions, int B, int T, double* mean_loss);
/* Backward of dloss · Σ loss for the last forward; gradients accumulate. On the step's last
 * micro-batch (last_micro_batch = 1) and with NCCL attached, each layer's gradients are
 * all-reduced as soon as the backward has produced them. */
int herd_cuda_backward(herd_cuda_model* model, float dloss, int last_micro_batch);
int herd_cuda_zero_grad(herd_cuda_model* model);
/* Clip by global norm and take one AdamW step at learning rate c->lr (the schedule is the
 * engine's learning_rate()); *grad_norm is the norm before clipping. */
int herd_cuda_step(herd_cuda_model* model, const herd_cuda_adamw* c, double* grad_norm);

/* Copies to the host, in ParamLayout order: fp32 master weights, gradients; losses[B·T] of
 * the last forward. */
int herd_cuda_get_params(herd_cuda_model* model, float* out);
int herd_cuda_get_grads(herd_cuda_model* model, float* out);
int herd_cuda_get_losses(herd_cuda_model* model, float* out);
/* Resuming from a checkpoint: replaces the fp32 master weights (and their bf16 copy) with
 * params, in ParamLayout order. */
int herd_cuda_set_params(herd_cuda_model* model, const float* params);
/* Elements [offset, offset + n) of the gradients, and of the master weights set from the host
 * (their bf16 copy follows). LoRA trains its adapters on the host from the targeted matrices'
 * gradients and sends the merged matrices back this way (engine/lora.h); the weights must
 * not be sharded. */
int herd_cuda_get_grads_range(herd_cuda_model* model, size_t offset, size_t n, float* out);
int herd_cuda_set_params_range(herd_cuda_model* model, size_t offset, size_t n,
                               const float* params);
/* AdamW's state in ParamLayout order: the first and second moments (n_params each) and the
 * number of steps taken (bias correction). With a sharded optimizer, get gathers every
 * rank's shard (a collective: all ranks call it) and set keeps this rank's shard. */
int herd_cuda_get_optimizer_state(herd_cuda_model* model, float* m, float* v, int64_t* steps);
int herd_cuda_set_optimizer_state(herd_cuda_model* model, const float* m, const float* v,
                                  int64_t steps);
/* Bytes this model has allocated on the device (weights, state, activations, workspaces). */
size_t herd_cuda_model_bytes(const herd_cuda_model* model);
/* Waits for the device to finish the model's work (for timing). */
int herd_cuda_synchronize(herd_cuda_model* model);

/* NCCL, loaded at run time (libnccl.so.2). herd_cuda_nccl_available() is 1 when it loads.
 * Rank 0 makes the id (128 bytes), the trainer's rendezvous hands it to every rank, and each
 * rank attaches it to its model. shard_optimizer = 1: reduce-scatter the gradients, AdamW on
 * this rank's shard only (moments for 1/world of the parameters), all-gather the weights. */
#define HERD_CUDA_NCCL_ID_BYTES 128
int herd_cuda_nccl_available(void);
int herd_cuda_nccl_unique_id(unsigned char id[HERD_CUDA_NCCL_ID_BYTES]);
int herd_cuda_nccl_attach(herd_cuda_model* model, const unsigned char id[HERD_CUDA_NCCL_ID_BYTES],
                          int rank, int world, int shard_optimizer);

/* Kernel checks (bench/gpu/check.cc): each runs one kernel on host fp32 arrays, with the
 * device copies in bf16 when bf16 = 1 (inputs rounded to bf16 on upload), outputs poisoned
 * with NaN before the kernel runs. Shapes and conventions as engine/ops.h; outputs that ops.h
 * accumulates into (+=) start from the values given here. */
int herd_cuda_check_matmul(int bf16, int trans_a, int trans_b, int m, int n, int k,
                           const float* a, const float* b, float beta, float* c);
int herd_cuda_check_embedding(int bf16, int deterministic, const int32_t* tokens,
                              const float* table, const float* dout, int N, int C, int V,
                              float* out, float* dtable);
int herd_cuda_check_rmsnorm(int bf16, const float* x, const float* g, const float* dout, int N,
                            int C, float eps, float* y, float* rstd, float* dx, float* dg);
int herd_cuda_check_rope(int bf16, const float* x, int B, int T, int n_heads, int head_dim,
                         double theta, int inverse, const int32_t* positions, float* y);
int herd_cuda_check_swiglu(int bf16, const float* a, const float* b, const float* dout, size_t n,
                           float* out, float* da, float* db);
int herd_cuda_check_cross_entropy(int bf16, const float* logits, const int32_t* targets, int N,
                                  int V, float dloss, float* losses, float* dlogits);
/* Attention has two bf16 kernel sets, so a variant instead of bf16: 0 fp32 (CUDA cores),
 * 1 bf16 on tensor cores (the default for bf16), 2 bf16 on CUDA cores (the fallback that
 * HERD_CUDA_ATTENTION=simt selects). The environment variable does not affect this check. */
int herd_cuda_check_attention(int variant, const float* q, const float* k, const float* v,
                              const float* dout, const int32_t* positions, int B, int T,
                              int n_heads, int n_kv_heads, int head_dim, float* out, float* lse,
                              float* dq, float* dk, float* dv);
int herd_cuda_check_adamw(const float* grads, float* params, float* m, float* v, size_t n,
                          int decay, const herd_cuda_adamw* c, int64_t step, float grad_scale);
int herd_cuda_check_grad_norm(const float* grads, size_t n, double* norm);

#ifdef __cplusplus
}
#endif
#endif
