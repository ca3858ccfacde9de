fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = primer::bench::train(&args[1], args[2].parse().unwrap(), 3).unwrap();
    println!(
        "median_step_ms={:.2} tokens_per_s={:.0} peak_rss_mib={:.1} loss {:.4}->{:.4}",
        r.median_step_ms, r.tokens_per_s, r.peak_rss_mib, r.loss_first, r.loss_last
    );
}
