use primer::engine::{attention, matmul};
use std::time::Instant;
fn t<F: FnMut()>(name: &str, n: usize, mut f: F) {
    f();
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.3} ms",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}
fn main() {
    let rows = 768;
    for (din, dout) in [(128, 384), (128, 128), (128, 512), (512, 128), (128, 65)] {
        let x = vec![0.1f32; rows * din];
        let w = vec![0.1f32; din * dout];
        let mut y = vec![0.0f32; rows * dout];
        let mut dx = vec![0.0f32; rows * din];
        let mut dw = vec![0.0f32; din * dout];
        for layout in [matmul::Layout::InOut, matmul::Layout::OutIn] {
            let d = matmul::Dims {
                rows,
                d_in: din,
                d_out: dout,
                layout,
            };
            t(&format!("fwd {din}x{dout} {layout:?}"), 50, || {
                matmul::forward(&mut y, &x, &w, None, d, false)
            });
            t(&format!("bwd {din}x{dout} {layout:?}"), 50, || {
                matmul::backward(Some(&mut dx), false, &mut dw, None, &y, &x, &w, d)
            });
        }
    }
    let (b, nh, tt, hd) = (12, 4, 64, 32);
    let c = nh * hd;
    let qkv = vec![0.1f32; b * tt * 3 * c];
    let mut out = vec![0.0f32; b * tt * c];
    let mut lse = vec![0.0f32; b * nh * tt];
    let mut dqkv = vec![0.0f32; b * tt * 3 * c];
    let sh = attention::Shape {
        batch: b,
        heads: nh,
        head_dim: hd,
        tq: tt,
        tk: tt,
        causal: Some(0),
        key_lens: None,
        scale: 0.1,
        dropout: None,
    };
    let (qv, kv, vv) = (
        attention::View::packed(tt, 3 * c, 0),
        attention::View::packed(tt, 3 * c, c),
        attention::View::packed(tt, 3 * c, 2 * c),
    );
    t("attn fwd", 50, || {
        attention::forward(
            &mut out,
            attention::View::packed(tt, c, 0),
            &mut lse,
            &qkv,
            qv,
            &qkv,
            kv,
            vv,
            &sh,
        )
    });
    let dout = out.clone();
    t("attn bwd", 50, || {
        attention::backward(
            &mut dqkv,
            None,
            (qv, kv, vv),
            &dout,
            &out,
            attention::View::packed(tt, c, 0),
            &lse,
            &qkv,
            qv,
            &qkv,
            kv,
            vv,
            &sh,
        )
    });
}
