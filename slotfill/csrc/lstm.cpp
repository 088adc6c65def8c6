// One LSTM layer over a padded batch, forward and backward, for slotfill's encoder
// (slotfill/model/lstm_kernel.py).
//
// The layer's one or two directions run at once, one thread each: a step's products are too
// small to gain from a second thread, two independent passes are not. The caller projects the
// inputs (x W_ih^T + b_ih + b_hh) in one matrix product per direction, into a table: one row
// per position when training, one per distinct word of the batch when tagging a first layer.
// Each step copies its rows' projections into a (B, 4H) buffer, does one (B, H) x (H, 4H)
// product and one fused loop over the gates, and writes h_t to its place in the batch-first
// output; the right-to-left direction walks each utterance from its own last word, and the
// rows of utterances that have ended drop out of the step. The backward pass mirrors it: one
// (B, 4H) x (4H, H) product per step, then the input and weight gradients of all steps as
// three large products. So the caller needs no flips, transposes, concatenation or padding
// mask around the kernel.
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

// The rows of a batch longest first, and how many are still running at each step: at step t
// the running rows are the first active[t], so a step's product and gates skip the
// utterances that have ended (padding costs nothing).
struct Schedule {
  std::vector<int64_t> order, active;
  const int64_t* lengths;
  int64_t steps;

  Schedule(const Tensor& lengths_, int64_t steps_) : lengths(lengths_.data_ptr<int64_t>()), steps(steps_) {
    const int64_t batch = lengths_.size(0);
    order.resize(batch);
    for (int64_t b = 0; b < batch; ++b) {
      TORCH_CHECK(lengths[b] >= 0 && lengths[b] <= steps, "slotfill LSTM: length out of range");
      order[b] = b;
    }
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    active.resize(steps);
    int64_t running = batch;
    for (int64_t t = 0; t < steps; ++t) {
      while (running > 0 && lengths[order[running - 1]] <= t) --running;
      active[t] = running;
    }
  }

  // The batch-first position (b * T + p) that running row i of direction k is at in step t:
  // direction 1 runs right to left within the row's own length.
  int64_t place(int64_t i, int64_t t, int64_t k) const {
    const int64_t b = order[i];
    return b * steps + (k == 1 ? lengths[b] - 1 - t : t);
  }
};

void check_lengths(const Tensor& lengths, int64_t batch) {
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == batch && lengths.scalar_type() == at::kLong &&
                  lengths.is_contiguous(),
              "slotfill LSTM: lengths must be contiguous int64 (B,)");
}

// One LSTM layer over a padded batch, its one or two directions at once. rows[k] (N, 4H):
// direction k's input projections x W_ih^T + b_ih + b_hh; positions (B, T): the row each
// position reads (a training pass: every position's own row; tagging: one row per distinct
// word); lengths (B,). Direction 0 runs left to right, direction 1 right to left within each
// utterance's length (what reversing its input and output within the lengths does for a
// left-to-right pass). Each step copies its running rows' projections into a (B, 4H) buffer,
// adds h_{t-1} W_hh^T, applies the gates and writes h_t straight to its place in the output.
// Returns out (B, T, n H), direction k in columns [k H, (k + 1) H), zero at padding; with
// save, then per direction the time-major buffers of the backward pass: gate activations
// (T, B, 4H), c (T, B, H) and h (T, B, H), row i of step t being running row i.
std::vector<Tensor> steps_forward(at::TensorList rows, const Tensor& positions, at::TensorList w_hhs,
                                  const Tensor& lengths, bool save) {
  const int64_t n = rows.size();
  TORCH_CHECK(n >= 1 && n <= 2 && static_cast<int64_t>(w_hhs.size()) == n, "slotfill LSTM: one or two directions");
  TORCH_CHECK(positions.dim() == 2 && positions.scalar_type() == at::kLong && positions.is_contiguous(),
              "slotfill LSTM: positions must be contiguous int64 (B, T)");
  const int64_t batch = positions.size(0), steps = positions.size(1), hidden = w_hhs[0].size(1);
  const int64_t width = 4 * hidden;
  check_lengths(lengths, batch);
  for (int64_t k = 0; k < n; ++k) {
    TORCH_CHECK(rows[k].dim() == 2 && rows[k].is_contiguous() && rows[k].scalar_type() == at::kFloat &&
                    rows[k].size(1) == width && w_hhs[k].size(1) == hidden,
                "slotfill LSTM: rows must be contiguous float (N, 4H)");
  }
  const int64_t* p = positions.data_ptr<int64_t>();
  const int64_t count = rows[0].size(0);
  for (int64_t i = 0; i < batch * steps; ++i) TORCH_CHECK(p[i] >= 0 && p[i] < count, "slotfill LSTM: position out of range");
  const Schedule plan(lengths, steps);
  const auto options = rows[0].options();
  std::vector<Tensor> result(1 + (save ? 3 * n : 0));
  result[0] = at::zeros({batch, steps, n * hidden}, options);
  float* o = result[0].data_ptr<float>();
  each(n, [&](int64_t k) {
    const float* r = rows[k].data_ptr<float>();
    // Saving, every step keeps its own slices; otherwise one gate buffer, c updated in place
    // and h alternating between two.
    Tensor gates = at::empty({save ? steps : 1, batch, width}, options);
    Tensor c = at::empty({save ? steps : 1, batch, hidden}, options);
    Tensor h = save ? at::zeros({steps, batch, hidden}, options) : at::empty({2, batch, hidden}, options);
    Tensor w_hh_t = w_hhs[k].t();
    for (int64_t t = 0; t < steps && plan.active[t] > 0; ++t) {
      const int64_t running = plan.active[t];
      Tensor pre = gates[save ? t : 0];
      float* pr = pre.data_ptr<float>();
      for (int64_t i = 0; i < running; ++i) {
        std::memcpy(pr + i * width, r + p[plan.place(i, t, k)] * width, width * sizeof(float));
      }
      if (t > 0) pre.narrow(0, 0, running).addmm_(h[save ? t - 1 : (t + 1) % 2].narrow(0, 0, running), w_hh_t);
      float* cs = c[save ? t : 0].data_ptr<float>();
      const float* c_prev = t == 0 ? nullptr : save ? c[t - 1].data_ptr<float>() : cs;
      float* hs = h[save ? t : t % 2].data_ptr<float>();
      gate_step(pr, c_prev, cs, hs, running, hidden);
      for (int64_t i = 0; i < running; ++i) {
        std::memcpy(o + plan.place(i, t, k) * n * hidden + k * hidden, hs + i * hidden, hidden * sizeof(float));
      }
    }
    if (save) {
      result[1 + 3 * k] = gates;
      result[2 + 3 * k] = c;
      result[3 + 3 * k] = h;
    }
  });
  return result;
}

// The backward pass of a training steps_forward (positions: every position its own row).
// x (B T, D): the layer's input; weights[4k .. 4k + 3] = w_ih, w_hh, b_ih, b_hh; saved: the
// forward's buffers; dout (B, T, n H). Per direction: dx (B T, D), dw_ih, dw_hh, db.
std::vector<Tensor> steps_backward(const Tensor& x, at::TensorList weights, at::TensorList saved,
                                   const Tensor& lengths, const Tensor& dout_) {
  const int64_t n = saved.size() / 3;
  const int64_t batch = dout_.size(0), steps = dout_.size(1);
  const int64_t hidden = weights[1].size(1), width = 4 * hidden;
  check_lengths(lengths, batch);
  const Tensor dout = dout_.contiguous();
  const float* d_out = dout.data_ptr<float>();
  const Schedule plan(lengths, steps);
  std::vector<Tensor> out(4 * n);
  each(n, [&](int64_t k) {
    const Tensor& w_ih = weights[4 * k];
    const Tensor& w_hh = weights[4 * k + 1];
    const Tensor& gates = saved[3 * k];
    const Tensor& c = saved[3 * k + 1];
    const Tensor& h = saved[3 * k + 2];
    Tensor dh = at::zeros({batch, hidden}, x.options());  // rows start at zero the step they end
    Tensor dc = at::zeros({batch, hidden}, x.options());
    Tensor dgates = at::zeros({steps, batch, width}, x.options());  // time-major; zero where ended
    Tensor dgates_at = at::zeros({batch * steps, width}, x.options());  // batch-first; zero at padding
    float* dh_p = dh.data_ptr<float>();
    float* dg_at = dgates_at.data_ptr<float>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t running = plan.active[t];
      if (running == 0) continue;
      for (int64_t i = 0; i < running; ++i) {  // the gradient reaching h_t from above
        const float* g = d_out + plan.place(i, t, k) * n * hidden + k * hidden;
        float* row = dh_p + i * hidden;
        for (int64_t j = 0; j < hidden; ++j) row[j] += g[j];
      }
      float* dg = dgates[t].data_ptr<float>();
      gate_step_backward(gates[t].data_ptr<float>(), dg, c[t].data_ptr<float>(),
                         t > 0 ? c[t - 1].data_ptr<float>() : nullptr, dh_p, dc.data_ptr<float>(), running, hidden);
      for (int64_t i = 0; i < running; ++i) {
        std::memcpy(dg_at + plan.place(i, t, k) * width, dg + i * width, width * sizeof(float));
      }
      // dh_{t-1} from the recurrence; the gradient from above is added next step
      if (t > 0) {
        Tensor dh_rows = dh.narrow(0, 0, running);
        at::mm_out(dh_rows, dgates[t].narrow(0, 0, running), w_hh);
      }
    }
    out[4 * k] = at::mm(dgates_at, w_ih);
    out[4 * k + 1] = at::mm(dgates_at.t(), x);
    out[4 * k + 2] = steps > 1 ? at::mm(dgates.slice(0, 1).reshape({(steps - 1) * batch, width}).t(),
                                        h.slice(0, 0, steps - 1).reshape({(steps - 1) * batch, hidden}))
                               : at::zeros_like(w_hh);
    out[4 * k + 3] = dgates_at.sum(0);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(slotfill, m) {
  m.def("lstm_steps(Tensor[] rows, Tensor positions, Tensor[] w_hhs, Tensor lengths, bool save) -> Tensor[]",
        &steps_forward);
  m.def("lstm_steps_backward(Tensor x, Tensor[] weights, Tensor[] saved, Tensor lengths, Tensor dout) -> Tensor[]",
        &steps_backward);
}
