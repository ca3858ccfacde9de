//! Every kernel's backward against central finite differences of an independent f64 reference forward.
//! Each test builds a scalar loss `L = Σ out ⊙ R` for a random `R`, so `dout = R`.

use super::rng::{uniform_at, Rng};
use super::simd::tests::erf64;
use super::*;

fn rand_vec(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Numerical gradient of `f` at `x` by central differences.
fn numeric_grad(x: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + h;
            let up = f(&x);
            x[i] = orig - h;
            let down = f(&x);
            x[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

#[track_caller]
fn assert_close(what: &str, analytic: &[f32], numeric: &[f64], tol: f64) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: length");
    let scale = numeric.iter().fold(1e-3f64, |a, b| a.max(b.abs()));
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (a as f64 - n).abs() / scale;
        assert!(
            err < tol,
            "{what}[{i}]: analytic {a} vs numeric {n} (rel err {err:.2e})"
        );
    }
}

fn dot(a: &[f64], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(a, &r)| a * r as f64).sum()
}

fn linear_ref(x: &[f64], w: &[f64], b: &[f64], d: matmul::Dims) -> Vec<f64> {
    let mut y = vec![0.0; d.rows * d.d_out];
    for r in 0..d.rows {
        for o in 0..d.d_out {
            let mut s = if b.is_empty() { 0.0 } else { b[o] };
            for i in 0..d.d_in {
                let wi = match d.layout {
                    matmul::Layout::InOut => w[i * d.d_out + o],
                    matmul::Layout::OutIn => w[o * d.d_in + i],
                    matmul::Layout::Panels => unreachable!(),
                };
                s += x[r * d.d_in + i] * wi;
            }
            y[r * d.d_out + o] = s;
        }
    }
    y
}

#[test]
fn matmul_both_layouts() {
    for layout in [matmul::Layout::InOut, matmul::Layout::OutIn] {
        let mut rng = Rng::new(1);
        let d = matmul::Dims {
            rows: 5,
            d_in: 7,
            d_out: 6,
            layout,
        };
        let x = rand_vec(&mut rng, 35, 1.0);
        let w = rand_vec(&mut rng, 42, 1.0);
        let b = rand_vec(&mut rng, 6, 1.0);
        let r = rand_vec(&mut rng, 30, 1.0);
        let mut y = vec![0.0; 30];
        matmul::forward(&mut y, &x, &w, Some(&b), d, false);
        assert_close(
            "forward",
            &y,
            &linear_ref(&to64(&x), &to64(&w), &to64(&b), d),
            1e-5,
        );
        let (mut dx, mut dw, mut db) = (vec![0.0; 35], vec![0.0; 42], vec![0.0; 6]);
        matmul::backward(Some(&mut dx), false, &mut dw, Some(&mut db), &r, &x, &w, d);
        let (x64, w64, b64) = (to64(&x), to64(&w), to64(&b));
        let nx = numeric_grad(&x64, &|x| dot(&linear_ref(x, &w64, &b64, d), &r));
        let nw = numeric_grad(&w64, &|w| dot(&linear_ref(&x64, w, &b64, d), &r));
        let nb = numeric_grad(&b64, &|b| dot(&linear_ref(&x64, &w64, b, d), &r));
        assert_close("dx", &dx, &nx, 1e-4);
        assert_close("dw", &dw, &nw, 1e-4);
        assert_close("db", &db, &nb, 1e-4);
        // accumulate adds to what is there
        let mut y2 = vec![1.0; 30];
        matmul::forward(&mut y2, &x, &w, Some(&b), d, true);
        assert!(y2.iter().zip(&y).all(|(a, b)| (a - b - 1.0).abs() < 1e-5));
    }
}

fn layernorm_ref(x: &[f64], w: &[f64], b: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            row.iter()
                .enumerate()
                .map(move |(i, v)| (v - mean) * rstd * w[i] + b[i])
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layernorm_backward() {
    let mut rng = Rng::new(2);
    let (rows, c) = (37, 9); // more rows than one parallel chunk
    let x = rand_vec(&mut rng, rows * c, 2.0);
    let w = rand_vec(&mut rng, c, 1.0);
    let b = rand_vec(&mut rng, c, 1.0);
    let r = rand_vec(&mut rng, rows * c, 1.0);
    let (mut y, mut mean, mut rstd) = (vec![0.0; rows * c], vec![0.0; rows], vec![0.0; rows]);
    layernorm::forward(&mut y, &mut mean, &mut rstd, &x, &w, &b, c, 1e-5);
    let (x64, w64, b64) = (to64(&x), to64(&w), to64(&b));
    assert_close("forward", &y, &layernorm_ref(&x64, &w64, &b64, c), 1e-5);
    let mut y2 = vec![0.0; rows * c];
    layernorm::apply(&mut y2, &x, &w, &b, &mean, &rstd, c);
    assert_eq!(y, y2);
    let (mut dx, mut dw, mut db) = (vec![0.5; rows * c], vec![0.0; c], vec![0.0; c]);
    layernorm::backward(&mut dx, &mut dw, &mut db, &r, &x, &w, &mean, &rstd);
    dx.iter_mut().for_each(|v| *v -= 0.5); // backward adds to dx
    let nx = numeric_grad(&x64, &|x| dot(&layernorm_ref(x, &w64, &b64, c), &r));
    let nw = numeric_grad(&w64, &|w| dot(&layernorm_ref(&x64, w, &b64, c), &r));
    let nb = numeric_grad(&b64, &|b| dot(&layernorm_ref(&x64, &w64, b, c), &r));
    assert_close("dx", &dx, &nx, 1e-4);
    assert_close("dw", &dw, &nw, 1e-4);
    assert_close("db", &db, &nb, 1e-4);
}

fn gelu_ref(x: &[f64], kind: gelu::Gelu) -> Vec<f64> {
    x.iter()
        .map(|&x| match kind {
            gelu::Gelu::Erf => 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
            gelu::Gelu::Tanh => {
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
                0.5 * x * (1.0 + u.tanh())
            }
        })
        .collect()
}

#[test]
fn gelu_both_kinds() {
    for kind in [gelu::Gelu::Erf, gelu::Gelu::Tanh] {
        let mut rng = Rng::new(3);
        let x = rand_vec(&mut rng, 200, 3.0);
        let r = rand_vec(&mut rng, 200, 1.0);
        let mut y = vec![0.0; 200];
        gelu::forward(&mut y, &x, kind);
        let x64 = to64(&x);
        assert_close("forward", &y, &gelu_ref(&x64, kind), 1e-5);
        let mut dx = vec![0.0; 200];
        gelu::backward(&mut dx, &x, &r, kind);
        let nx = numeric_grad(&x64, &|x| dot(&gelu_ref(x, kind), &r));
        assert_close("dx", &dx, &nx, 1e-4);
    }
}

/// Reference attention over separate q `[b, tq, h·d]` and k, v `[b, tk, h·d]` buffers.
fn attention_ref(q: &[f64], k: &[f64], v: &[f64], sh: &attention::Shape) -> Vec<f64> {
    let (hd, nh, tq, tk) = (sh.head_dim, sh.heads, sh.tq, sh.tk);
    let c = nh * hd;
    let mut out = vec![0.0; sh.batch * tq * c];
    for b in 0..sh.batch {
        for h in 0..nh {
            for i in 0..tq {
                let visible: Vec<usize> = (0..tk)
                    .filter(|&j| sh.causal.is_none_or(|o| j <= i + o))
                    .filter(|&j| sh.key_lens.is_none_or(|l| j < l[b]))
                    .collect();
                let s: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        (0..hd)
                            .map(|d| {
                                q[(b * tq + i) * c + h * hd + d] * k[(b * tk + j) * c + h * hd + d]
                            })
                            .sum::<f64>()
                            * sh.scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for (&j, sj) in visible.iter().zip(&s) {
                    let mut p = (sj - m).exp() / z;
                    if let Some((prob, seed)) = sh.dropout {
                        let idx = (((b * nh + h) * tq + i) * tk + j) as u64;
                        p = if uniform_at(seed, idx) < prob {
                            0.0
                        } else {
                            p / (1.0 - prob as f64)
                        };
                    }
                    for d in 0..hd {
                        out[(b * tq + i) * c + h * hd + d] += p * v[(b * tk + j) * c + h * hd + d];
                    }
                }
            }
        }
    }
    out
}

fn check_attention(sh: attention::Shape, seed: u64) {
    let mut rng = Rng::new(seed);
    let c = sh.heads * sh.head_dim;
    let (nq, nk) = (sh.batch * sh.tq * c, sh.batch * sh.tk * c);
    let q = rand_vec(&mut rng, nq, 1.0);
    let k = rand_vec(&mut rng, nk, 1.0);
    let v = rand_vec(&mut rng, nk, 1.0);
    let r = rand_vec(&mut rng, nq, 1.0);
    // K and V share one [b, tk, 2c] buffer, as in a cross-attention's fused kv projection
    let kv: Vec<f32> = k
        .chunks(c)
        .zip(v.chunks(c))
        .flat_map(|(a, b)| a.iter().chain(b).copied())
        .collect();
    let qv = attention::View::packed(sh.tq, c, 0);
    let (kview, vview) = (
        attention::View::packed(sh.tk, 2 * c, 0),
        attention::View::packed(sh.tk, 2 * c, c),
    );
    let mut out = vec![0.0; nq];
    let mut lse = vec![0.0; sh.batch * sh.heads * sh.tq];
    attention::forward(&mut out, qv, &mut lse, &q, qv, &kv, kview, vview, &sh);
    let (q64, k64, v64) = (to64(&q), to64(&k), to64(&v));
    assert_close("forward", &out, &attention_ref(&q64, &k64, &v64, &sh), 1e-5);
    let (mut dq, mut dkv) = (vec![9.0; nq], vec![9.0; 2 * nk]);
    attention::backward(
        &mut dq,
        Some(&mut dkv),
        (qv, kview, vview),
        &r,
        &out,
        qv,
        &lse,
        &q,
        qv,
        &kv,
        kview,
        vview,
        &sh,
    );
    let dk: Vec<f32> = dkv.chunks(2 * c).flat_map(|x| x[..c].to_vec()).collect();
    let dv: Vec<f32> = dkv.chunks(2 * c).flat_map(|x| x[c..].to_vec()).collect();
    let nq_ = numeric_grad(&q64, &|q| dot(&attention_ref(q, &k64, &v64, &sh), &r));
    let nk_ = numeric_grad(&k64, &|k| dot(&attention_ref(&q64, k, &v64, &sh), &r));
    let nv_ = numeric_grad(&v64, &|v| dot(&attention_ref(&q64, &k64, v, &sh), &r));
    assert_close("dq", &dq, &nq_, 1e-4);
    assert_close("dk", &dk, &nk_, 1e-4);
    assert_close("dv", &dv, &nv_, 1e-4);
}

fn shape(tq: usize, tk: usize) -> attention::Shape<'static> {
    attention::Shape {
        batch: 2,
        heads: 3,
        head_dim: 4,
        tq,
        tk,
        causal: None,
        key_lens: None,
        scale: 0.5,
        dropout: None,
        starts: None,
    }
}

#[test]
fn attention_causal() {
    check_attention(
        attention::Shape {
            causal: Some(0),
            ..shape(5, 5)
        },
        4,
    );
}

#[test]
fn attention_bidirectional_with_padding() {
    check_attention(
        attention::Shape {
            key_lens: Some(&[5, 3]),
            ..shape(5, 5)
        },
        5,
    );
}

#[test]
fn attention_cross_and_cached_offset() {
    check_attention(shape(3, 6), 6);
    check_attention(
        attention::Shape {
            causal: Some(3),
            ..shape(3, 6)
        },
        7,
    );
}

#[test]
fn attention_several_query_blocks() {
    // more query rows than one block of the kernel, so key prefixes and dK/dV accumulation across blocks count
    let long = |tq, tk| attention::Shape {
        heads: 2,
        head_dim: 3,
        ..shape(tq, tk)
    };
    check_attention(
        attention::Shape {
            causal: Some(0),
            dropout: Some((0.2, 5)),
            ..long(40, 40)
        },
        11,
    );
    check_attention(
        attention::Shape {
            key_lens: Some(&[40, 21]),
            ..long(40, 40)
        },
        12,
    );
    check_attention(
        attention::Shape {
            causal: Some(0),
            key_lens: Some(&[36, 0]),
            ..long(36, 36)
        },
        13,
    );
}

/// Packed sequences (no padding rows, one fused `[rows, 3C]` QKV buffer) give exactly the padded kernel's
/// outputs and gradients on the real rows, when padded query rows carry no output gradient.
#[test]
fn attention_packed_equals_padded() {
    let lens = [40usize, 21, 7];
    let sh = attention::Shape {
        batch: 3,
        heads: 2,
        head_dim: 3,
        key_lens: Some(&lens),
        dropout: Some((0.2, 17)),
        ..shape(40, 40)
    };
    let (c, t) = (6, 40);
    let mut rng = Rng::new(21);
    let qkv = rand_vec(&mut rng, 3 * t * 3 * c, 1.0);
    let mut dout = rand_vec(&mut rng, 3 * t * c, 1.0);
    for (b, &len) in lens.iter().enumerate() {
        dout[(b * t + len) * c..(b + 1) * t * c].fill(0.0);
    }
    let views = |rows| {
        (
            attention::View::packed(rows, 3 * c, 0),
            attention::View::packed(rows, 3 * c, c),
            attention::View::packed(rows, 3 * c, 2 * c),
        )
    };
    let run = |sh: &attention::Shape, qkv: &[f32], dout: &[f32], rows: usize| {
        let (q, k, v) = views(t);
        let ov = attention::View::packed(t, c, 0);
        let mut out = vec![0.0; rows * c];
        let mut lse = vec![0.0; 3 * 2 * t];
        attention::forward(&mut out, ov, &mut lse, qkv, q, qkv, k, v, sh);
        let mut dqkv = vec![9.0; rows * 3 * c];
        let (dq, dk, dv) = views(t);
        attention::backward(
            &mut dqkv,
            None,
            (dq, dk, dv),
            dout,
            &out,
            ov,
            &lse,
            qkv,
            q,
            qkv,
            k,
            v,
            sh,
        );
        (out, dqkv)
    };
    let (out, dqkv) = run(&sh, &qkv, &dout, 3 * t);
    let real = |x: &[f32], w: usize| -> Vec<f32> {
        let mut r = Vec::new();
        for (b, &len) in lens.iter().enumerate() {
            r.extend_from_slice(&x[b * t * w..(b * t + len) * w]);
        }
        r
    };
    let starts = [0, 40, 61];
    let packed = attention::Shape {
        starts: Some(&starts),
        ..sh
    };
    let (p_out, p_dqkv) = run(&packed, &real(&qkv, 3 * c), &real(&dout, c), 68);
    assert_close("out", &p_out, &to64(&real(&out, c)), 1e-6);
    assert_close("dqkv", &p_dqkv, &to64(&real(&dqkv, 3 * c)), 1e-6);
}

#[test]
fn attention_with_dropout() {
    check_attention(
        attention::Shape {
            causal: Some(0),
            dropout: Some((0.3, 99)),
            ..shape(6, 6)
        },
        8,
    );
}

fn xent_ref(logits: &[f64], targets: &[i32], v: usize) -> f64 {
    logits
        .chunks(v)
        .zip(targets)
        .filter(|(_, &t)| t != xent::IGNORE)
        .map(|(row, &t)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln() - row[t as usize]
        })
        .sum()
}

#[test]
fn cross_entropy_with_ignore() {
    let mut rng = Rng::new(9);
    let (n, v) = (11, 13);
    let logits = rand_vec(&mut rng, n * v, 3.0);
    let targets: Vec<i32> = (0..n)
        .map(|i| {
            if i % 4 == 1 {
                xent::IGNORE
            } else {
                (i * 5 % v) as i32
            }
        })
        .collect();
    let mut l = logits.clone();
    let loss = xent::forward_backward(&mut l.clone(), &targets, v, None);
    let l64 = to64(&logits);
    assert!((loss - xent_ref(&l64, &targets, v)).abs() < 1e-4);
    let g = xent::forward_backward(&mut l, &targets, v, Some(0.5));
    assert!((g - loss).abs() < 1e-9);
    let ng = numeric_grad(&l64, &|x| 0.5 * xent_ref(x, &targets, v));
    assert_close("dlogits", &l, &ng, 1e-4);
}

#[test]
fn embedding_scatter_add() {
    let mut rng = Rng::new(10);
    let (v, c, t) = (6, 4, 3);
    let ids = [1u32, 5, 1, 0, 1, 2];
    let wte = rand_vec(&mut rng, v * c, 1.0);
    let wpe = rand_vec(&mut rng, t * c, 1.0);
    let r = rand_vec(&mut rng, ids.len() * c, 1.0);
    let emb_ref = |wte: &[f64], wpe: &[f64]| -> Vec<f64> {
        ids.iter()
            .enumerate()
            .flat_map(|(i, &id)| {
                (0..c).map(move |d| wte[id as usize * c + d] + wpe[(i % t) * c + d])
            })
            .collect()
    };
    let mut out = vec![0.0; ids.len() * c];
    embedding::forward(&mut out, &ids, &wte, Some(&wpe), t, 0, c);
    let (te, pe) = (to64(&wte), to64(&wpe));
    assert_close("forward", &out, &emb_ref(&te, &pe), 1e-6);
    let (mut dte, mut dpe) = (vec![0.0; v * c], vec![0.0; t * c]);
    embedding::backward(&mut dte, Some(&mut dpe), &r, &ids, t, c);
    assert_close(
        "dwte",
        &dte,
        &numeric_grad(&te, &|w| dot(&emb_ref(w, &pe), &r)),
        1e-4,
    );
    assert_close(
        "dwpe",
        &dpe,
        &numeric_grad(&pe, &|w| dot(&emb_ref(&te, w), &r)),
        1e-4,
    );
}

#[test]
fn dropout_is_its_own_backward() {
    let x: Vec<f32> = (0..50_000).map(|i| 1.0 + (i % 7) as f32).collect();
    let mut y = x.clone();
    dropout::apply(&mut y, 0.25, 42);
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / x.len() as f64;
    assert!((dropped - 0.25).abs() < 0.01, "dropped fraction {dropped}");
    let mean_ratio: f64 =
        y.iter().zip(&x).map(|(a, b)| (a / b) as f64).sum::<f64>() / x.len() as f64;
    assert!((mean_ratio - 1.0).abs() < 0.02);
    // the gradient of y wrt x is the same mask: applying it to ones reproduces y / x
    let mut g = vec![1.0f32; x.len()];
    dropout::apply(&mut g, 0.25, 42);
    assert!(g
        .iter()
        .zip(y.iter().zip(&x))
        .all(|(g, (y, x))| (g - y / x).abs() < 1e-6));
}

#[test]
fn token_type_embedding_add() {
    let mut rng = Rng::new(11);
    let (v, c) = (2, 5);
    let ids = [0u32, 1, 1, 0, 1];
    let table = rand_vec(&mut rng, v * c, 1.0);
    let base = rand_vec(&mut rng, ids.len() * c, 1.0);
    let r = rand_vec(&mut rng, ids.len() * c, 1.0);
    let add_ref = |t: &[f64]| -> Vec<f64> {
        (0..ids.len() * c)
            .map(|i| base[i] as f64 + t[ids[i / c] as usize * c + i % c])
            .collect()
    };
    let mut out = base.clone();
    embedding::add(&mut out, &ids, &table, c);
    let t64 = to64(&table);
    assert_close("forward", &out, &add_ref(&t64), 1e-6);
    let mut dt = vec![0.0; v * c];
    embedding::backward(&mut dt, None, &r, &ids, 1, c);
    let nt = numeric_grad(&t64, &|t| dot(&add_ref(t), &r));
    assert_close("dtable", &dt, &nt, 1e-4);
}

#[test]
fn tanh_pooler_activation() {
    let mut rng = Rng::new(12);
    let x = rand_vec(&mut rng, 9000, 2.0);
    let r = rand_vec(&mut rng, 9000, 1.0);
    let tanh_ref = |x: &[f64]| x.iter().map(|v| v.tanh()).collect::<Vec<_>>();
    let mut y = vec![0.0; x.len()];
    tanh::forward(&mut y, &x);
    let x64 = to64(&x);
    assert_close("forward", &y, &tanh_ref(&x64), 1e-6);
    let mut dx = vec![0.0; x.len()];
    tanh::backward(&mut dx, &y, &r);
    // d/dx Σ r·tanh(x) is diagonal: check it element-wise against a central difference
    let h = 1e-5;
    let num: Vec<f64> = x64
        .iter()
        .zip(&r)
        .map(|(&x, &r)| r as f64 * ((x + h).tanh() - (x - h).tanh()) / (2.0 * h))
        .collect();
    assert_close("dx", &dx, &num, 1e-5);
}
