//! The progress bar every long loop shows (training, sampling), in one style.

/// A bar of `len` steps labelled `name`, or a hidden one when `show` is false.
pub fn bar(show: bool, len: usize, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{name:>10} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}}<{{eta}})"
        ))
        .expect("a valid template"),
    );
    bar
}
