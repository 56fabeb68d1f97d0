//! RMS norm, SwiGLU and rotary embeddings as single parallel ops with backward passes.
//!
//! Composed from candle's tensor ops, an RMS norm is six passes forward and a dozen back, each
//! allocating; SwiGLU's silu-times-up and rotary embeddings are several more. In a LoRA step
//! on a small model these elementwise passes cost as much as the matrix products, so each is
//! one op here: a pass over the rows forward, one back. The RMS norm's weight is frozen (only
//! the input gets a gradient), as every norm weight is in LoRA training.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::par::{for_chunks, for_chunks2};

/// The contiguous f32 data of an op's input.
pub(crate) fn data<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: the input is not contiguous") };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// The contiguous f32 data of a tensor, for a backward pass.
pub(crate) fn with_data<R>(tensor: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => f(data(cpu, layout, op)?),
        _ => bail!("{op}: expected a CPU tensor"),
    }
}

/// Rows of at least this many elements go to the thread pool one by one; smaller rows in
/// chunks of this size, so that a task is worth its scheduling.
const CHUNK: usize = 1 << 14;

fn rows_per_task(width: usize) -> usize {
    (CHUNK / width.max(1)).max(1)
}

/// `x / rms(x) ⊙ w` over the last dimension.
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean = row.iter().map(|x| x * x).sum::<f32>() / row.len() as f32;
    1.0 / (mean + eps).sqrt()
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "retort-rms-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout, self.name())?;
        let width = self.weight.len();
        if x.len() % width != 0 {
            bail!("rms norm: rows of {} for a weight of {width}", layout.shape().dims().last().unwrap_or(&0));
        }
        let mut y = vec![0f32; x.len()];
        let per = rows_per_task(width) * width;
        for_chunks(&mut y, per, |i, y| {
            for (y, x) in y.chunks_mut(width).zip(x[i * per..].chunks(width)) {
                let r = inverse_rms(x, self.eps);
                for ((y, x), w) in y.iter_mut().zip(x).zip(&self.weight) {
                    *y = x * r * w;
                }
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let width = self.weight.len();
        let dx = with_data(arg, self.name(), |x| {
            with_data(&grad, self.name(), |g| {
                // dx = r · (g ⊙ w − x · r² · mean(g ⊙ w ⊙ x))
                let mut dx = vec![0f32; x.len()];
                let per = rows_per_task(width) * width;
                for_chunks(&mut dx, per, |i, dx| {
                    for ((dx, x), g) in dx.chunks_mut(width).zip(x[i * per..].chunks(width)).zip(g[i * per..].chunks(width)) {
                        let r = inverse_rms(x, self.eps);
                        let dot = g.iter().zip(&self.weight).zip(x).map(|((g, w), x)| g * w * x).sum::<f32>() / width as f32;
                        let c = r * r * dot;
                        for (((dx, x), g), w) in dx.iter_mut().zip(x).zip(g).zip(&self.weight) {
                            *dx = r * (g * w - x * c);
                        }
                    }
                });
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// RMS norm of `x` over its last dimension with the frozen `weight`.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let weight = weight.flatten_all()?.to_vec1::<f32>()?;
    x.contiguous()?.apply_op1(RmsNorm { weight, eps: eps as f32 })
}

/// `silu(gate) ⊙ up`.
struct SwiGlu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "retort-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (gate, up) = (data(s1, l1, self.name())?, data(s2, l2, self.name())?);
        if l1.shape() != l2.shape() {
            bail!("swiglu: gate {:?} and up {:?} differ in shape", l1.shape(), l2.shape());
        }
        let mut y = vec![0f32; gate.len()];
        for_chunks(&mut y, CHUNK, |i, y| {
            for ((y, g), u) in y.iter_mut().zip(&gate[i * CHUNK..]).zip(&up[i * CHUNK..]) {
                *y = g * sigmoid(*g) * u;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (d_gate, d_up) = with_data(gate, self.name(), |gate| {
            with_data(up, self.name(), |up| {
                with_data(&grad, self.name(), |g| {
                    let (mut d_gate, mut d_up) = (vec![0f32; gate.len()], vec![0f32; gate.len()]);
                    for_chunks2(&mut d_gate, &mut d_up, CHUNK, |chunk, d_gate, d_up| {
                        let at = chunk * CHUNK;
                        for i in 0..d_gate.len() {
                            let s = sigmoid(gate[at + i]);
                            let silu = gate[at + i] * s;
                            d_up[i] = g[at + i] * silu;
                            d_gate[i] = g[at + i] * up[at + i] * (s + silu * (1.0 - s));
                        }
                    });
                    Ok((d_gate, d_up))
                })
            })
        })?;
        Ok((Some(Tensor::from_vec(d_gate, gate.shape(), gate.device())?), Some(Tensor::from_vec(d_up, up.shape(), up.device())?)))
    }
}

/// `silu(gate) ⊙ up`, elementwise.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

/// The cos and sin of each (position, frequency) angle of a pack's tokens: (n, half) each,
/// shared by every layer's rotary embedding of the pass and by its backward pass.
pub(crate) struct RopeTables {
    cos: std::sync::Arc<Vec<f32>>,
    sin: std::sync::Arc<Vec<f32>>,
    half: usize,
    n: usize,
}

impl RopeTables {
    /// The tables for tokens at `positions`, head dimension `head_dim`, frequency base `base`.
    pub(crate) fn new(positions: &[u32], head_dim: usize, base: f32) -> RopeTables {
        let half = head_dim / 2;
        let inverse: Vec<f32> = (0..half).map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32)).collect();
        let angles: Vec<f32> = positions.iter().flat_map(|&p| inverse.iter().map(move |f| p as f32 * f)).collect();
        RopeTables {
            cos: std::sync::Arc::new(angles.iter().map(|a| a.cos()).collect()),
            sin: std::sync::Arc::new(angles.iter().map(|a| a.sin()).collect()),
            half,
            n: positions.len(),
        }
    }
}

/// Rotary position embedding of (…, n, head_dim) rows with a pack's [`RopeTables`]: pairs
/// `(2i, 2i+1)` when `interleaved` (llama's GGUF layout), else `(i, i + half)` (qwen2's). A
/// rotation, so its backward pass is the rotation back.
struct Rope {
    cos: std::sync::Arc<Vec<f32>>,
    sin: std::sync::Arc<Vec<f32>>,
    half: usize,
    n: usize,
    interleaved: bool,
    /// -1 for the backward pass: the rotation by −θ.
    sign: f32,
}

impl Rope {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let (half, width) = (self.half, 2 * self.half);
        let mut y = vec![0f32; x.len()];
        for_chunks(&mut y, width, |row, y| {
            let x = &x[row * width..(row + 1) * width];
            let t = row % self.n;
            let (cos, sin) = (&self.cos[t * half..(t + 1) * half], &self.sin[t * half..(t + 1) * half]);
            for i in 0..half {
                let (a, b) = if self.interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                let (c, s) = (cos[i], self.sign * sin[i]);
                y[a] = x[a] * c - x[b] * s;
                y[b] = x[a] * s + x[b] * c;
            }
        });
        y
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "retort-rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout, self.name())?;
        let dims = layout.shape().dims();
        if dims.len() < 2 || dims[dims.len() - 1] != 2 * self.half || dims[dims.len() - 2] != self.n {
            bail!("rope: expected (…, {}, {}), found {:?}", self.n, 2 * self.half, dims);
        }
        Ok((CpuStorage::F32(self.apply(x)), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope { cos: self.cos.clone(), sin: self.sin.clone(), sign: -self.sign, ..*self };
        Ok(Some(grad.contiguous()?.apply_op1(back)?))
    }
}

/// Rotary embedding of `x` (…, n, head_dim) with the pack's tables.
pub(crate) fn rope(x: &Tensor, tables: &RopeTables, interleaved: bool) -> Result<Tensor> {
    let (cos, sin) = (tables.cos.clone(), tables.sin.clone());
    x.contiguous()?.apply_op1(Rope { cos, sin, half: tables.half, n: tables.n, interleaved, sign: 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn close(a: &Tensor, b: &Tensor, tolerance: f32) -> bool {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < tolerance)
    }

    /// A deterministic tensor of the shape with values in (−2, 2).
    fn values(shape: &[usize], seed: u32) -> Vec<f32> {
        let count: usize = shape.iter().product();
        (0..count).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 4000) as f32 / 1000.0 - 2.0).collect()
    }

    /// Forward values and the gradient of a weighted sum, for ours and candle's composite.
    fn agree(shape: &[usize], ours: impl Fn(&Tensor) -> Tensor, theirs: impl Fn(&Tensor) -> Tensor, tolerance: f32) {
        let x = values(shape, 7);
        let weights = Tensor::from_vec(values(shape, 11), shape, &Device::Cpu).unwrap();
        let (a, b) = (Var::from_vec(x.clone(), shape, &Device::Cpu).unwrap(), Var::from_vec(x, shape, &Device::Cpu).unwrap());
        let (ya, yb) = (ours(a.as_tensor()), theirs(b.as_tensor()));
        assert!(close(&ya, &yb, tolerance), "forward values differ");
        let ga = (ya * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (yb * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(close(ga.get(&a).unwrap(), gb.get(&b).unwrap(), tolerance), "gradients differ");
    }

    #[test]
    fn rms_norm_matches_the_composite_forward_and_backward() {
        let weight = Tensor::from_vec(values(&[6], 3), 6, &Device::Cpu).unwrap();
        agree(
            &[5, 6],
            |x| rms_norm(x, &weight, 1e-5).unwrap(),
            |x| {
                let mean = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
                x.broadcast_div(&(mean + 1e-5).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&weight).unwrap()
            },
            1e-4,
        );
    }

    #[test]
    fn swiglu_matches_silu_times_up_for_both_inputs() {
        let (shape, device) = ([4usize, 5], Device::Cpu);
        let (g1, g2) =
            (Var::from_vec(values(&shape, 1), &shape, &device).unwrap(), Var::from_vec(values(&shape, 1), &shape, &device).unwrap());
        let (u1, u2) =
            (Var::from_vec(values(&shape, 2), &shape, &device).unwrap(), Var::from_vec(values(&shape, 2), &shape, &device).unwrap());
        let ours = swiglu(g1.as_tensor(), u1.as_tensor()).unwrap();
        let theirs = (candle_nn::ops::silu(g2.as_tensor()).unwrap() * u2.as_tensor()).unwrap();
        assert!(close(&ours, &theirs, 1e-5));
        let weights = Tensor::from_vec(values(&shape, 9), &shape, &device).unwrap();
        let ga = (ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(close(ga.get(&g1).unwrap(), gb.get(&g2).unwrap(), 1e-5));
        assert!(close(ga.get(&u1).unwrap(), gb.get(&u2).unwrap(), 1e-5));
    }

    #[test]
    fn rope_matches_candles_interleaved_and_halves_forward_and_backward() {
        // Two packed sequences: positions count from 0 in each.
        let (positions, half) = ([0u32, 1, 2, 0, 1], 4usize);
        let n = positions.len();
        let tables = RopeTables::new(&positions, 2 * half, 100.0);
        let cos = Tensor::from_vec(tables.cos.to_vec(), (n, half), &Device::Cpu).unwrap();
        let sin = Tensor::from_vec(tables.sin.to_vec(), (n, half), &Device::Cpu).unwrap();
        assert!((tables.cos[half + 1] - (1.0f32 / 100f32.powf(0.25)).cos()).abs() < 1e-6, "position 1, frequency 1");
        agree(
            &[1, 2, n, 2 * half],
            |x| rope(x, &tables, true).unwrap(),
            |x| candle_nn::rotary_emb::rope_i_slow(x, &cos, &sin).unwrap(),
            1e-5,
        );
        agree(
            &[1, 2, n, 2 * half],
            |x| rope(x, &tables, false).unwrap(),
            |x| candle_nn::rotary_emb::rope_slow(x, &cos, &sin).unwrap(),
            1e-5,
        );
    }
}
