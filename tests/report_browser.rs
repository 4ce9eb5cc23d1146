//! The report in a browser: `voxflow report` of the demo (shrunk with
//! --set) opened in headless Chromium (Debian's `chromium`, which
//! scripts/test.sh installs). Fails on any console line or uncaught error
//! (Chromium logs every console level to stderr as `INFO:CONSOLE`, and the
//! page logs nothing when all is well), checks that the page's script ran
//! (its `data-ready` count of DAG nodes in the DOM Chromium dumps), and
//! saves a screenshot, which must be a PNG of the window's size. Set
//! VOXFLOW_SCREENSHOT=PATH to keep the screenshot (docs/report.png is a
//! crop of one, resized and quantized to 96 colours with Pillow).
//! Without a `chromium` on PATH it fails, naming the package to install.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .map(str::to_string)
        .find(|name| Command::new(name).arg("--version").output().map(|o| o.status.success()).unwrap_or(false))
}

/// Runs headless Chromium on `page` with `extra` (--screenshot=..., --dump-dom); returns (stdout, stderr).
fn headless(browser: &str, profile: &Path, page: &Path, extra: &str) -> (String, String) {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
            extra,
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("run chromium");
    let (out, err) =
        (String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string());
    assert!(output.status.success(), "chromium failed:\n{err}");
    (out, err)
}

fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect()
}

#[test]
fn the_demo_report_opens_in_headless_chromium_without_a_console_error() {
    let browser = chromium().expect("no chromium on PATH: `apt-get install chromium` (scripts/test.sh installs it)");
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/demo.yaml");
    let dir = Scratch::new("report-browser");
    let store = dir.join("store");
    let small = [
        "--store",
        store.to_str().unwrap(),
        "--set",
        "synth.stories=4",
        "--set",
        "synth.words_per_story=600",
        "--set",
        "synth.test_words=600",
        "--set",
        "synth.voxels=300",
    ];
    let mut args = vec!["run", demo, "--format", "json"];
    args.extend_from_slice(&small);
    let run = voxflow_json(&args, 0);
    assert!(statuses(&run).values().all(|s| s == "ran"), "{run}");
    let page = dir.join("report.html");
    let output = voxflow(&["report", demo, "--store", store.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 300_000, "{} bytes", html.len());

    // The DOM after the script ran: every DAG node wired (11 stages in the file).
    let (dom, err) = headless(&browser, &dir.join("profile-dom"), &page, "--dump-dom");
    assert!(console_lines(&err).is_empty(), "console output:\n{}", console_lines(&err).join("\n"));
    let nodes = html.matches("<g data-base=").count();
    assert!(nodes >= 11, "{nodes} DAG nodes");
    assert!(dom.contains(&format!("data-ready=\"{nodes}\"")), "the script did not run: {}", &dom[..dom.len().min(400)]);
    assert!(dom.contains("<h3>score ×3"), "the matrix stage's figures in one section");

    let png = dir.join("report.png");
    let (_, err) = headless(&browser, &dir.join("profile-shot"), &page, &format!("--screenshot={}", png.display()));
    assert!(console_lines(&err).is_empty(), "console output:\n{}", console_lines(&err).join("\n"));
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let (width, height) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    assert_eq!((width, height), (1200, 2400));
    assert!(bytes.len() > 50_000, "a page with charts is not a blank PNG ({} bytes)", bytes.len());
    if let Ok(keep) = std::env::var("VOXFLOW_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("copy the screenshot");
    }
}
