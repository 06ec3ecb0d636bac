//! Word count: a generator of lines, a workflow splitting them into words, keyed by word, with
//! a per-key count. Run with `cargo run --example word_count`.

use pods_sdk::{AppBuilder, DeterministicSystem, Error, PerKeyState};

/// Counts the words of `lines` (one atom per line) and returns `(word, count so far)` per word.
pub fn run(lines: &[&str]) -> Result<Vec<(String, u64)>, Error> {
    let app = AppBuilder::new("words");
    let text =
        app.generator_from_atoms("lines", lines.iter().map(|l| vec![l.to_string()]).collect());
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .source(&text)
        .flat_map(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .key_by(|w| w.clone())
        .processor(move |ctx, word: String| {
            let n = count.get(ctx) + 1;
            count.set(ctx, n);
            ctx.emit((word, n));
        })
        .sink();
    let mut system = DeterministicSystem::new(1);
    system.launch(app.build()?)?;
    let out = system.subscribe::<(String, u64)>("/words/workflows/count/stream")?;
    system.run_until_quiescent();
    Ok(out.values().concat())
}

#[allow(dead_code)]
fn main() -> Result<(), Error> {
    for (word, n) in run(&["the quick brown fox", "jumps over the lazy dog", "The end"])? {
        println!("{word} {n}");
    }
    Ok(())
}
