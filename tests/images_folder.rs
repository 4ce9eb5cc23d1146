//! `images.folder` through the binary: PNGs written from Python (numpy and
//! zlib: grey, grey + alpha, RGB, RGBA and palette, 8 and 16 bits, square
//! and not, smaller and larger than `size`) come out as an independent
//! NumPy computation says (BT.709 luma, alpha over black, area averaging
//! by integrating the pixels' step function, 2 Y - 1), with closed forms
//! for the same-size and whole-factor cases; the labels table opens in
//! pyarrow; the directory is keyed by content; bad folders fail naming the
//! stage, the param, the file and the fix.

mod common;

use common::*;
use voxflow::kinds::images::folder::{area_weights, resize_area};

/// Writes a PNG from raw samples (`python - PATH COLOUR_TYPE BIT_DEPTH`)
/// and the class tree; shared by the scripts below.
const PNG_WRITER: &str = r#"
import struct, zlib, numpy as np

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

def write_png(path, samples, colour_type, bit_depth, palette=None):
    """samples: H x W x channels integers (palette: H x W x 1 indices)."""
    h, w, c = samples.shape
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + samples[y].astype(dtype).tobytes() for y in range(h))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", palette.astype("u1").tobytes())
    out += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(out)
"#;

/// Makes `dir/<class>/*.png` and writes the expected n x size^2 pixels to
/// `expected.npy` and the closed-form checks' results to stdout.
const MAKE_FOLDER: &str = r#"
import os, sys, json
root, seed, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
LUMA = np.array([0.2126, 0.7152, 0.0722])

def area(a, to, axis):
    # Area averaging along one axis by integrating the pixels' step function:
    # F(x) = sum of the pixels before floor(x) + frac(x) * pixel floor(x).
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    cum = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    def F(x):
        k = np.minimum(np.floor(x).astype(int), n - 1)
        return cum[k] + (x - k)[:, None] * a[k]
    edges = np.arange(to + 1) * n / to
    out = (F(edges[1:]) - F(edges[:-1])) / (n / to)
    return np.moveaxis(out, 0, axis)

# (colour type, bit depth, width, height) per image, cycling.
SPECS = [(0, 8, size, size), (2, 8, 2 * size, 2 * size), (6, 8, 3 * size, 3 * size), (0, 16, 20, 13),
         (2, 16, size // 2, size // 2), (4, 8, size, 24), (3, 8, 37, 41), (4, 16, 2 * size, size), (6, 16, 11, 29)]
# Created in this order; the stage sorts them by name: Dog, cat, zebra.
CLASSES = [("zebra", 7), ("cat", 9), ("Dog", 5)]
expected = {}
checks = {"identity": 0, "blocks": 0, "kinds": set()}
k = 0
for name, count in CLASSES:
    os.makedirs(f"{root}/{name}")
    rows = []
    for i in range(count):
        ct, bits, w, h = SPECS[k % len(SPECS)]
        k += 1
        top = 65535 if bits == 16 else 255
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ct]
        palette = None
        if ct == 3:
            palette = rng.integers(0, 256, size=(16, 3))
            samples = rng.integers(0, 16, size=(h, w, 1))
            rgb = palette[samples[:, :, 0]] / 255.0
            grey, alpha = rgb @ LUMA, np.ones((h, w))
        else:
            samples = rng.integers(0, top + 1, size=(h, w, channels))
            v = samples / top
            colour = ct in (2, 6)
            grey = v[:, :, :3] @ LUMA if colour else v[:, :, 0]
            alpha = v[:, :, -1] if ct in (4, 6) else np.ones((h, w))
        y = grey * alpha
        out = area(area(y, size, 1), size, 0)
        if (w, h) == (size, size):
            assert np.allclose(out, y, atol=1e-12); checks["identity"] += 1
        if w == h and w % size == 0 and w > size:
            f = w // size
            blocks = y.reshape(size, f, size, f).mean(axis=(1, 3))
            assert np.allclose(out, blocks, atol=1e-12); checks["blocks"] += 1
        checks["kinds"].add((ct, bits))
        file = f"{root}/{name}/img{i:02d}.png"
        write_png(file, samples, ct, bits, palette)
        rows.append(2 * out.reshape(-1) - 1)
    expected[name] = rows
names = sorted(expected)
np.save(f"{root}/../expected.npy", np.array([r for n in names for r in expected[n]]))
# Skipped: a text file in a class folder, a file at the top, a hidden file.
open(f"{root}/cat/notes.txt", "w").write("not an image")
open(f"{root}/README.md", "w").write("my images")
open(f"{root}/zebra/.DS_Store", "wb").write(b"\0\0")
print(json.dumps({"names": names, "counts": [dict(CLASSES)[n] for n in names], "identity": checks["identity"],
                  "blocks": checks["blocks"], "kinds": len(checks["kinds"])}))
"#;

const CHECK: &str = r#"
import sys, json, numpy as np, pyarrow.feather as feather, pyarrow.parquet as pq
obj, expected = sys.argv[1], np.load(sys.argv[2])
m = feather.read_table(obj + "/images.arrow")
x = np.array(m.column("data").to_pylist(), dtype=np.float64)
labels = pq.read_table(obj + "/labels.parquet").to_pylist()
meta = {k.decode(): v.decode() for k, v in m.schema.metadata.items()}
err = float(np.abs(x - expected).max()) if x.shape == expected.shape else None
test = {}
for r in labels:
    test.setdefault(r["class"], []).append(r["split"] == "test")
print(json.dumps({
    "shape": list(x.shape), "max_abs_err": err,
    "index": [r["index"] for r in labels] == list(range(len(labels))),
    "label_column": m.column("label").to_pylist() == [float(r["label"]) for r in labels],
    "classes": meta.get("voxflow.class_names"), "height": meta.get("voxflow.height"),
    "label_of_class": sorted({(r["class"], r["label"]) for r in labels}),
    "test_per_class": {c: sum(t) for c, t in sorted(test.items())},
}))
"#;

fn write_folder(scratch: &Scratch, seed: u64, size: usize) -> serde_json::Value {
    let root = scratch.join("images");
    let script = format!("{PNG_WRITER}\n{MAKE_FOLDER}");
    let out = run_python(&script, &[root.to_str().unwrap(), &seed.to_string(), &size.to_string()]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn pipeline(scratch: &Scratch, params: &str) -> String {
    let path = scratch.write(
        "p.yaml",
        &format!("name: folder\nstages:\n  imgs:\n    kind: images.folder\n    params: {{{params}}}\n"),
    );
    path.to_str().unwrap().to_string()
}

#[test]
fn pixels_match_an_independent_numpy_resize_and_labels_open_in_pyarrow() {
    let seed = fresh_seed() % 1_000_000;
    let scratch = Scratch::new("images-folder");
    let size = 16;
    let made = write_folder(&scratch, seed, size);
    assert_eq!(made["names"], serde_json::json!(["Dog", "cat", "zebra"]));
    // The closed forms held for the same-size and whole-factor images, and
    // every colour type and depth was written.
    assert!(made["identity"].as_u64().unwrap() >= 2, "{made}");
    assert!(made["blocks"].as_u64().unwrap() >= 4, "{made}");
    assert_eq!(made["kinds"], 9, "{made}");

    let file = pipeline(&scratch, &format!("dir: images, size: {size}, test_fraction: 0.4, seed: {seed}"));
    let run = voxflow_json(&["run", &file, "--format", "json"], 0);
    let imgs = stage(&run, "imgs");
    assert_eq!(imgs["status"], "ran", "{run}");
    let object = scratch.join(".voxflow/objects").join(imgs["key"].as_str().unwrap());
    let expected = scratch.join("expected.npy");
    let out = run_python(CHECK, &[object.to_str().unwrap(), expected.to_str().unwrap()]);
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(got["shape"], serde_json::json!([21, size * size]), "{got}");
    let err = got["max_abs_err"].as_f64().unwrap();
    assert!(err < 2e-6, "largest difference from NumPy {err}: {got}");
    assert_eq!(got["index"], true);
    assert_eq!(got["label_column"], true);
    assert_eq!(got["classes"], "Dog,cat,zebra");
    assert_eq!(got["height"], "16");
    assert_eq!(got["label_of_class"], serde_json::json!([["Dog", 0], ["cat", 1], ["zebra", 2]]));
    // round(0.4 * n) per class: 5 -> 2, 9 -> 4, 7 -> 3 (2.8).
    assert_eq!(got["test_per_class"], serde_json::json!({"Dog": 2, "cat": 4, "zebra": 3}));

    // The skipped files are counted in a warning.
    let shown = stdout(&voxflow(&["show", &file, "imgs"]));
    assert!(shown.contains("warning: param `dir`: skipped 3 entries"), "{shown}");

    // Keyed by content: an unchanged folder is cached, an edited image reruns.
    let again = voxflow_json(&["run", &file, "--format", "json"], 0);
    assert_eq!(stage(&again, "imgs")["status"], "cached");
    let victim = scratch.join("images/cat/img00.png");
    let bytes = std::fs::read(scratch.join("images/Dog/img00.png")).unwrap();
    std::fs::write(&victim, bytes).unwrap();
    let edited = voxflow_json(&["run", &file, "--format", "json"], 0);
    assert_eq!(stage(&edited, "imgs")["status"], "ran", "{edited}");
}

#[test]
fn bad_folders_fail_naming_the_stage_param_file_and_fix() {
    let scratch = Scratch::new("images-folder-bad");
    // A bad size and a missing directory are found before anything runs.
    for (params, needles) in [
        ("dir: nowhere, size: 10", &["stage `imgs`: param `size`: size is 10", "use a multiple of 4 from 8 up"][..]),
        ("dir: nowhere", &["stage `imgs`: param `dir`:", "nowhere does not exist", "`dir/<class>/<image>.png`"][..]),
    ] {
        let file = pipeline(&scratch, params);
        let output = voxflow(&["run", &file]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let said = stderr(&output);
        for needle in needles {
            assert!(said.contains(needle), "{needle:?} not in:\n{said}");
        }
    }

    let fails = |setup: &dyn Fn(&std::path::Path), needles: &[&str]| {
        let scratch = Scratch::new("images-folder-bad");
        let root = scratch.join("images");
        std::fs::create_dir_all(&root).unwrap();
        setup(&root);
        let file = pipeline(&scratch, "dir: images, size: 8");
        let output = voxflow(&["run", &file]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let said = stderr(&output);
        assert!(said.contains("imgs"), "no stage name in:\n{said}");
        for needle in needles {
            assert!(said.contains(needle), "{needle:?} not in:\n{said}");
        }
    };
    let png = |path: &std::path::Path| {
        let script =
            format!("{PNG_WRITER}\nimport sys\nwrite_png(sys.argv[1], np.zeros((4, 4, 1), dtype=np.uint8), 0, 8)");
        run_python(&script, &[path.to_str().unwrap()]);
    };
    // One class.
    fails(
        &|root| {
            std::fs::create_dir_all(root.join("only")).unwrap();
            png(&root.join("only/a.png"));
        },
        &["param `dir`:", "has 1 class folder(s) (`only`), images.folder needs at least 2", "at least two classes"],
    );
    // A class folder without PNGs.
    fails(
        &|root| {
            for class in ["a", "b"] {
                std::fs::create_dir_all(root.join(class)).unwrap();
            }
            png(&root.join("a/x.png"));
            std::fs::write(root.join("b/x.jpg"), b"jpeg").unwrap();
        },
        &["param `dir`: the class folder", "/b holds no .png file", "put the class's PNG images in it"],
    );
    // A file that does not decode.
    fails(
        &|root| {
            for class in ["a", "b"] {
                std::fs::create_dir_all(root.join(class)).unwrap();
                png(&root.join(class).join("x.png"));
            }
            std::fs::write(root.join("b/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        },
        &["param `dir`:", "b/broken.png does not decode as a PNG image", "re-save the file as PNG"],
    );
}

#[test]
fn area_weights_sum_to_one_and_whole_factors_are_blocks() {
    for (from, to) in [(16, 16), (32, 16), (48, 16), (13, 8), (8, 16), (5, 12), (100, 12)] {
        for row in area_weights(from, to) {
            let sum: f64 = row.iter().map(|&(_, w)| w).sum();
            assert!((sum - 1.0).abs() < 1e-12, "{from} -> {to}: {row:?}");
        }
    }
    let third = 1.0 / 3.0;
    assert_eq!(
        area_weights(6, 2),
        vec![vec![(0, third), (1, third), (2, third)], vec![(3, third), (4, third), (5, third)]]
    );
    assert_eq!(area_weights(4, 8)[3], vec![(1, 1.0)]);
    assert_eq!(area_weights(3, 3), vec![vec![(0, 1.0)], vec![(1, 1.0)], vec![(2, 1.0)]]);
}

#[test]
fn resize_keeps_same_size_and_averages_blocks() {
    let image: Vec<f64> = (0..64).map(|i| (i as f64 * 0.37).fract()).collect();
    assert_eq!(resize_area(&image, 8, 8, 8), image);
    let half = resize_area(&image, 8, 8, 4);
    for y in 0..4 {
        for x in 0..4 {
            let block = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .map(|(dy, dx)| image[(2 * y + dy) * 8 + 2 * x + dx])
                .iter()
                .sum::<f64>()
                / 4.0;
            assert!((half[y * 4 + x] - block).abs() < 1e-12);
        }
    }
}
