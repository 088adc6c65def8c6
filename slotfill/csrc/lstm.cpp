// One-layer LSTM passes, forward and backward, for slotfill's encoder (slotfill/model/lstm_kernel.py).
//
// Each direction is one left-to-right pass over a time-major (T, B, D) input from
// h_0 = c_0 = 0 (the caller reverses the right-to-left direction's input within each
// utterance, as it does for oneDNN). The input projection of all steps is one matrix product;
// each step is one (B, H) x (H, 4H) product and one fused loop for the gates. The backward pass
// mirrors it: one (B, 4H) x (4H, H) product per step, then the weight and input gradients of all
// steps as three large products. Several directions run at once, one thread each: a step's
// products are too small to gain from a second thread, two independent passes are not.
// Inference (lstm_infer) takes each step's input projection from a table (one row per distinct
// word of the batch in the first layer), runs both directions over the padded batch itself and
// skips the utterances that have ended.
//
// Gate order and equations are torch.nn.LSTM's: i, f, g, o;
// c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

using at::Tensor;
using Vec = at::vec::Vectorized<float>;

// at::vec's polynomial exp (within 20 ulp, ~2e-6 relative) costs much less than Sleef's exp
// and tanh: tagging ATIS's test split on one thread of the Zen 4 machine, the gate loops took
// 42 ms of ~145 with those and ~14 with this.
inline Vec sigmoid(const Vec& x) {
  const Vec one(1.0f);
  return one / (one + x.neg().exp_u20());
}

// tanh x = 2 sigmoid(2x) - 1: the same exp; its error is absolute (~4e-7), as for the gates.
inline Vec tanh(const Vec& x) {
  const Vec one(1.0f), two(2.0f);
  return two / (one + (x * Vec(-2.0f)).exp_u20()) - one;
}

// One step's gates: pre (B, 4H) holds the pre-activations and receives the activations;
// c_prev may be null (c_0 = 0) or c itself (updated in place).
void gate_step(float* pre, const float* c_prev, float* c, float* h, int64_t batch, int64_t hidden) {
  const int64_t width = 4 * hidden;
  for (int64_t b = 0; b < batch; ++b) {
    float* gi = pre + b * width;
    float* gf = gi + hidden;
    float* gg = gf + hidden;
    float* go = gg + hidden;
    const float* cp = c_prev ? c_prev + b * hidden : nullptr;
    float* cb = c + b * hidden;
    float* hb = h + b * hidden;
    int64_t j = 0;
    for (; j + Vec::size() <= hidden; j += Vec::size()) {
      Vec i = sigmoid(Vec::loadu(gi + j));
      Vec f = sigmoid(Vec::loadu(gf + j));
      Vec g = tanh(Vec::loadu(gg + j));
      Vec o = sigmoid(Vec::loadu(go + j));
      Vec cv = i * g;
      if (cp) cv = f * Vec::loadu(cp + j) + cv;
      Vec hv = o * tanh(cv);
      i.store(gi + j); f.store(gf + j); g.store(gg + j); o.store(go + j);
      cv.store(cb + j); hv.store(hb + j);
    }
    for (; j < hidden; ++j) {
      float i = 1.0f / (1.0f + std::exp(-gi[j]));
      float f = 1.0f / (1.0f + std::exp(-gf[j]));
      float g = std::tanh(gg[j]);
      float o = 1.0f / (1.0f + std::exp(-go[j]));
      float cv = i * g + (cp ? f * cp[j] : 0.0f);
      gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;
      cb[j] = cv; hb[j] = o * std::tanh(cv);
    }
  }
}

// One step backward. gates (B, 4H): the activations; dgates (B, 4H) receives the pre-activation
// gradients.
// dh (B, H): the gradient reaching h_t (from above and from step t + 1); dc (B, H): the gradient
// reaching c_t from step t + 1, replaced by the one reaching c_{t-1}.
void gate_step_backward(const float* gates, float* dgates, const float* c, const float* c_prev, const float* dh, float* dc,
                        int64_t batch, int64_t hidden) {
  const int64_t width = 4 * hidden;
  const Vec one(1.0f);
  for (int64_t b = 0; b < batch; ++b) {
    const float* gi = gates + b * width;
    const float* gf = gi + hidden;
    const float* gg = gf + hidden;
    const float* go = gg + hidden;
    float* di = dgates + b * width;
    float* df = di + hidden;
    float* dg = df + hidden;
    float* dout = dg + hidden;
    const float* cb = c + b * hidden;
    const float* cp = c_prev ? c_prev + b * hidden : nullptr;
    const float* dhb = dh + b * hidden;
    float* dcb = dc + b * hidden;
    int64_t j = 0;
    for (; j + Vec::size() <= hidden; j += Vec::size()) {
      Vec i = Vec::loadu(gi + j), f = Vec::loadu(gf + j), g = Vec::loadu(gg + j), o = Vec::loadu(go + j);
      Vec tc = tanh(Vec::loadu(cb + j));
      Vec d = Vec::loadu(dhb + j);
      Vec dcv = Vec::loadu(dcb + j) + d * o * (one - tc * tc);
      Vec cpv = cp ? Vec::loadu(cp + j) : Vec(0.0f);
      (dcv * g * i * (one - i)).store(di + j);
      (dcv * cpv * f * (one - f)).store(df + j);
      (dcv * i * (one - g * g)).store(dg + j);
      (d * tc * o * (one - o)).store(dout + j);
      (dcv * f).store(dcb + j);
    }
    for (; j < hidden; ++j) {
      float i = gi[j], f = gf[j], g = gg[j], o = go[j];
      float tc = std::tanh(cb[j]);
      float d = dhb[j];
      float dcv = dcb[j] + d * o * (1.0f - tc * tc);
      float cpv = cp ? cp[j] : 0.0f;
      di[j] = dcv * g * i * (1.0f - i);
      df[j] = dcv * cpv * f * (1.0f - f);
      dg[j] = dcv * i * (1.0f - g * g);
      dout[j] = d * tc * o * (1.0f - o);
      dcb[j] = dcv * f;
    }
  }
}

// x (T, B, D); returns h (T, B, H), gates (T, B, 4H) activations, c (T, B, H).
std::vector<Tensor> pass_forward(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                 const Tensor& b_hh) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  Tensor gates = at::addmm(b_ih + b_hh, x.reshape({steps * batch, x.size(2)}), w_ih.t())
                     .view({steps, batch, 4 * hidden});
  Tensor h = at::empty({steps, batch, hidden}, x.options());
  Tensor c = at::empty({steps, batch, hidden}, x.options());
  Tensor w_hh_t = w_hh.t();
  for (int64_t t = 0; t < steps; ++t) {
    Tensor pre = gates[t];
    if (t > 0) pre.addmm_(h[t - 1], w_hh_t);
    gate_step(pre.data_ptr<float>(), t > 0 ? c[t - 1].data_ptr<float>() : nullptr, c[t].data_ptr<float>(),
              h[t].data_ptr<float>(), batch, hidden);
  }
  return {h, gates, c};
}

// Gradients of one pass: dh_out (T, B, H) reaches the outputs.
std::vector<Tensor> pass_backward(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& gates,
                                  const Tensor& c, const Tensor& h, const Tensor& dh_out) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  Tensor dh = at::empty({batch, hidden}, x.options());
  Tensor dc = at::zeros({batch, hidden}, x.options());
  Tensor dgates_all = at::empty_like(gates);
  for (int64_t t = steps - 1; t >= 0; --t) {
    if (t == steps - 1) dh.copy_(dh_out[t]);
    else dh.add_(dh_out[t]);
    gate_step_backward(gates[t].data_ptr<float>(), dgates_all[t].data_ptr<float>(), c[t].data_ptr<float>(),
                       t > 0 ? c[t - 1].data_ptr<float>() : nullptr, dh.data_ptr<float>(), dc.data_ptr<float>(),
                       batch, hidden);
    if (t > 0) at::mm_out(dh, dgates_all[t], w_hh);  // dh_{t-1} from above is added next step
  }
  Tensor dgates = dgates_all.view({steps * batch, 4 * hidden});
  Tensor dx = at::mm(dgates, w_ih).view({steps, batch, x.size(2)});
  Tensor dw_ih = at::mm(dgates.t(), x.reshape({steps * batch, x.size(2)}));
  Tensor dw_hh = steps > 1 ? at::mm(dgates_all.slice(0, 1).reshape({(steps - 1) * batch, 4 * hidden}).t(),
                                    h.slice(0, 0, steps - 1).reshape({(steps - 1) * batch, hidden}))
                           : at::zeros_like(w_hh);
  Tensor db = dgates.sum(0);
  return {dx, dw_ih, dw_hh, db};
}

// Runs fn(k) for k < n, one thread each when the pool allows, in the caller's inference mode
// (the pool's threads do not inherit it, and tensors made in it can only be updated in it).
template <typename F>
void each(int64_t n, const F& fn) {
  const bool inference = c10::InferenceMode::is_enabled();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    c10::InferenceMode mode(inference);
    at::NoGradGuard no_grad;
    for (int64_t k = begin; k < end; ++k) fn(k);
  });
}

// xs[k] (T, B, D) with weights[4k .. 4k + 3] = w_ih, w_hh, b_ih, b_hh: per direction h, gates, c.
std::vector<Tensor> forward(at::TensorList xs, at::TensorList weights) {
  const int64_t n = xs.size();
  std::vector<Tensor> out(3 * n);
  each(n, [&](int64_t k) {
    auto r = pass_forward(xs[k], weights[4 * k], weights[4 * k + 1], weights[4 * k + 2], weights[4 * k + 3]);
    for (int i = 0; i < 3; ++i) out[3 * k + i] = r[i];
  });
  return out;
}

// Inference over a padded batch (no gradient, nothing kept for a backward pass), every
// direction at once. rows[k] (N, 4H): direction k's input projections x W_ih^T + b_ih + b_hh,
// one per distinct input; positions (B, T): the row each position reads; lengths (B,).
// Direction 0 runs left to right, direction 1 right to left within each utterance's own
// length (what reversing its input and output within the lengths does for a left-to-right
// pass). Each step gathers its rows into a (B, 4H) buffer, adds h_{t-1} W_hh^T and applies
// the gates, over the utterances not yet ended; the states go straight to their place in the
// output. Returns (B, T, n H): direction k's states in columns [k H, (k + 1) H), zero at
// padding.
Tensor infer(at::TensorList rows, const Tensor& positions, at::TensorList w_hhs, const Tensor& lengths) {
  const int64_t n = rows.size();
  TORCH_CHECK(n >= 1 && n <= 2 && static_cast<int64_t>(w_hhs.size()) == n, "lstm_infer: one or two directions");
  TORCH_CHECK(positions.dim() == 2 && positions.scalar_type() == at::kLong, "lstm_infer: positions (B, T) int64");
  const int64_t batch = positions.size(0), steps = positions.size(1), hidden = w_hhs[0].size(1);
  const int64_t width = 4 * hidden;
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == batch && lengths.scalar_type() == at::kLong,
              "lstm_infer: lengths (B,) int64");
  for (int64_t k = 0; k < n; ++k) {
    TORCH_CHECK(rows[k].dim() == 2 && rows[k].is_contiguous() && rows[k].scalar_type() == at::kFloat &&
                    rows[k].size(1) == width && w_hhs[k].size(1) == hidden,
                "lstm_infer: rows must be contiguous float (N, 4H)");
  }
  const Tensor pos = positions.contiguous(), len = lengths.contiguous();
  const int64_t* p = pos.data_ptr<int64_t>();
  const int64_t* l = len.data_ptr<int64_t>();
  const int64_t count = rows[0].size(0);
  for (int64_t i = 0; i < batch * steps; ++i) TORCH_CHECK(p[i] >= 0 && p[i] < count, "lstm_infer: position out of range");
  for (int64_t b = 0; b < batch; ++b) TORCH_CHECK(l[b] >= 0 && l[b] <= steps, "lstm_infer: length out of range");
  // Rows longest first: at step t the rows still running are the first `active`, so each
  // step's product and gates skip the utterances that have ended (padding costs nothing).
  std::vector<int64_t> order(batch);
  for (int64_t b = 0; b < batch; ++b) order[b] = b;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l[a] > l[b]; });
  Tensor out = at::zeros({batch, steps, n * hidden}, rows[0].options());
  float* o = out.data_ptr<float>();
  each(n, [&](int64_t k) {
    const float* r = rows[k].data_ptr<float>();
    Tensor pre = at::empty({batch, width}, rows[k].options());
    Tensor h = at::empty({2, batch, hidden}, rows[k].options());  // h_t and h_{t-1}, in turn
    Tensor c = at::empty({batch, hidden}, rows[k].options());      // updated in place
    Tensor w_hh_t = w_hhs[k].t();
    float* pr = pre.data_ptr<float>();
    float* cs = c.data_ptr<float>();
    int64_t active = batch;
    for (int64_t t = 0; t < steps; ++t) {
      while (active > 0 && l[order[active - 1]] <= t) --active;
      if (active == 0) break;
      // the position row order[i] reads at step t, and where its h_t goes
      auto place = [&](int64_t i) {
        const int64_t b = order[i];
        return b * steps + (k == 1 ? l[b] - 1 - t : t);
      };
      for (int64_t i = 0; i < active; ++i) {
        std::memcpy(pr + i * width, r + p[place(i)] * width, width * sizeof(float));
      }
      float* hs = h[t % 2].data_ptr<float>();
      if (t > 0) pre.narrow(0, 0, active).addmm_(h[(t + 1) % 2].narrow(0, 0, active), w_hh_t);
      gate_step(pr, t > 0 ? cs : nullptr, cs, hs, active, hidden);
      for (int64_t i = 0; i < active; ++i) {
        std::memcpy(o + place(i) * n * hidden + k * hidden, hs + i * hidden, hidden * sizeof(float));
      }
    }
  });
  return out;
}

// saved = forward's outputs; dhs[k] (T, B, H). Per direction: dx, dw_ih, dw_hh, db.
std::vector<Tensor> backward(at::TensorList xs, at::TensorList weights, at::TensorList saved,
                             at::TensorList dhs) {
  const int64_t n = xs.size();
  std::vector<Tensor> out(4 * n);
  each(n, [&](int64_t k) {
    auto r = pass_backward(xs[k], weights[4 * k], weights[4 * k + 1], saved[3 * k + 1], saved[3 * k + 2],
                           saved[3 * k], dhs[k].contiguous());
    for (int i = 0; i < 4; ++i) out[4 * k + i] = r[i];
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(slotfill, m) {
  m.def("lstm_forward(Tensor[] xs, Tensor[] weights) -> Tensor[]", &forward);
  m.def("lstm_infer(Tensor[] rows, Tensor positions, Tensor[] w_hhs, Tensor lengths) -> Tensor", &infer);
  m.def("lstm_backward(Tensor[] xs, Tensor[] weights, Tensor[] saved, Tensor[] dhs) -> Tensor[]", &backward);
}
