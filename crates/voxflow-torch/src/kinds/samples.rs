//! `eval.samples` in the worker (params and what it measures:
//! `voxflow::kinds::eval::samples`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use tch::{Kind, Tensor};
use voxflow::kinds::eval::samples::SamplesParams;
use voxflow::kinds::images::ImageSet;
use voxflow::stage::{StageContext, StageError};

use crate::diffusion::classifier::Classifier;
use crate::diffusion::schedule::NoiseSchedule;
use crate::diffusion::unet::{ddim_sample, UNet};
use crate::diffusion::{images_tensor, step_seed, to_vec};

/// The scores of one checkpoint.
pub struct Scores {
    pub accuracy: f64,
    pub fid: f64,
}

/// The features of `images` under `classifier`, in batches of 500 (row-major f32).
fn features(classifier: &Classifier, images: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    let n = images.size()[0];
    let parts: Vec<Tensor> =
        (0..n).step_by(500).map(|start| classifier.features(&images.narrow(0, start, (n - start).min(500)))).collect();
    Tensor::cat(&parts, 0)
}

/// `per_class` samples of every class from `unet` (DDIM, guidance), class by
/// class, from noise seeded by `seed`; batches of `batch_size`.
pub fn sample_classes(
    unet: &UNet,
    per_class: usize,
    ddim_steps: usize,
    guidance: f64,
    seed: u64,
    batch_size: usize,
) -> (Tensor, Tensor) {
    let device = unet.vs.device();
    let k = unet.config.classes as i64;
    let s = unet.config.image_size as i64;
    let n = k * per_class as i64;
    tch::manual_seed(step_seed(seed, 0));
    let noise = Tensor::randn([n, 1, s, s], (Kind::Float, device));
    let labels = Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(per_class as i64, 0, None);
    let schedule = NoiseSchedule::linear(unet.config.timesteps, unet.config.beta_start, unet.config.beta_end);
    let parts: Vec<Tensor> = (0..n)
        .step_by(batch_size)
        .map(|start| {
            let len = (n - start).min(batch_size as i64);
            ddim_sample(
                unet,
                &schedule,
                noise.narrow(0, start, len),
                &labels.narrow(0, start, len),
                ddim_steps,
                guidance,
            )
        })
        .collect();
    (Tensor::cat(&parts, 0), labels)
}

/// The grid of samples (one row per class, `columns` each) as 8-bit grey pixels: (width, height, pixels).
pub fn grid_pixels(
    samples: &Tensor,
    classes: usize,
    per_class: usize,
    columns: usize,
    size: usize,
) -> (usize, usize, Vec<u8>) {
    let values = to_vec(samples);
    let (width, height) = (columns * size, classes * size);
    let mut pixels = vec![0u8; width * height];
    for class in 0..classes {
        for col in 0..columns {
            let image = &values[(class * per_class + col) * size * size..][..size * size];
            for y in 0..size {
                for x in 0..size {
                    let v = ((image[y * size + x] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
                    pixels[(class * size + y) * width + col * size + x] = v;
                }
            }
        }
    }
    (width, height, pixels)
}

pub fn eval_samples(p: &SamplesParams, ctx: &mut StageContext) -> Result<(), StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    if let voxflow::device::Device::Cuda(_) = device {
        ctx.nondeterministic("sampling on CUDA: cuDNN convolutions are not bitwise reproducible");
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let torch_device = crate::device::to_tch(device);
    let set = ImageSet::read(ctx.input("images")?, "images")?;
    let classifier_input = ctx.input("classifier")?;
    let classifier_dir = classifier_input.output_path("model").map_err(|e| {
        e.with_hint("give a train.classifier stage as `classifier` (its output `model` is the network)")
    })?;
    let classifier = Classifier::load(&classifier_dir, torch_device).map_err(|e| StageError::failed(e.to_string()))?;
    if classifier.config.image_size != set.size || classifier.config.classes != set.classes() {
        return Err(StageError::failed(format!(
            "the classifier (stage `{}`) was trained on {}x{} images of {} classes, the images are {}x{} of {}",
            classifier_input.stage,
            classifier.config.image_size,
            classifier.config.image_size,
            classifier.config.classes,
            set.size,
            set.size,
            set.classes()
        ))
        .with_hint("train the classifier on the same images stage"));
    }
    let mut test_rows = set.split_indices(true);
    if test_rows.len() < 2 {
        test_rows = (0..set.len()).collect();
    }
    let (real_images, _) = images_tensor(&set, &test_rows, torch_device);
    let real_features = to_vec(&features(&classifier, &real_images));
    let dim = classifier.config.feature_dim;

    let model = ctx.input("model")?;
    let mut steps: Vec<(usize, String)> = model
        .manifest
        .outputs
        .keys()
        .filter_map(|name| Some((name.strip_prefix("step")?.parse().ok()?, name.clone())))
        .collect();
    steps.sort();
    if steps.is_empty() {
        return Err(StageError::failed(format!("the `model` input (stage `{}`) has no step<N> outputs", model.stage))
            .with_hint("give a train.ddpm stage as a whole, with `checkpoints: [...]` in its params"));
    }
    let dirs: Vec<(usize, std::path::PathBuf)> =
        steps.iter().map(|(n, name)| Ok((*n, model.output_path(name)?))).collect::<Result<_, StageError>>()?;
    let grids = ctx.out_dir.join("grids");
    std::fs::create_dir_all(&grids).map_err(|e| StageError::failed(format!("{}: {e}", grids.display())))?;
    let mut rows: Vec<(usize, String, Scores)> = Vec::new();
    ctx.progress_unit("checkpoints");
    for (i, (step, dir)) in dirs.iter().enumerate() {
        ctx.check_cancelled()?;
        ctx.progress(i as u64, dirs.len() as u64);
        let unet = UNet::load(dir, torch_device).map_err(|e| StageError::failed(e.to_string()))?;
        if unet.config.image_size != set.size || unet.config.classes != set.classes() {
            return Err(StageError::failed(format!(
                "checkpoint {} is of {}x{} images of {} classes, the images are {}x{} of {}",
                dir.display(),
                unet.config.image_size,
                unet.config.image_size,
                unet.config.classes,
                set.size,
                set.size,
                set.classes()
            ))
            .with_hint("evaluate the model on the images stage it was trained on"));
        }
        let (samples, labels) =
            sample_classes(&unet, p.samples_per_class, p.ddim_steps, p.guidance, p.seed, p.batch_size);
        let generated = features(&classifier, &samples);
        let predicted = tch::no_grad(|| classifier.logits(&generated).argmax(1, false));
        let accuracy = predicted.eq_tensor(&labels).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let fid = voxflow::numeric::frechet::frechet_distance_of(&real_features, &to_vec(&generated), dim);
        let (width, height, pixels) =
            grid_pixels(&samples, set.classes(), p.samples_per_class, p.grid_columns, set.size);
        let png = voxflow::formats::png::encode_grey(width, height, &pixels);
        let file = grids.join(format!("step{step}.png"));
        std::fs::write(&file, &png).map_err(|e| StageError::failed(format!("{}: {e}", file.display())))?;
        // Pixels drawn 2 to 4 times their size in the report.
        let scale = (128 / set.size).clamp(2, 4);
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\"><text x=\"4\" y=\"14\" font-size=\"12\">{mode}, step {step}: accuracy {accuracy:.3}, FID {fid:.3}</text><image x=\"0\" y=\"20\" width=\"{iw}\" height=\"{ih}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/></svg>",
            w = width * scale,
            h = height * scale + 20,
            iw = width * scale,
            ih = height * scale,
            mode = unet.config.mode,
            data = voxflow::formats::png::base64(&png)
        );
        ctx.add_figure(&format!("samples_step{step}"), &svg)?;
        tracing::info!(stage = ctx.name, "step {step}: accuracy {accuracy:.4} fid {fid:.4}");
        rows.push((*step, unet.config.mode.clone(), Scores { accuracy, fid }));
    }
    ctx.progress(dirs.len() as u64, dirs.len() as u64);
    ctx.add_dir("grids", "grids");
    let schema = Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("accuracy", DataType::Float64, false),
        Field::new("fid", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0 as i64))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2.accuracy))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2.fid))),
    ];
    ctx.write_table("summary", &RecordBatch::try_new(Arc::new(schema), columns).expect("summary schema"))?;
    let curve = |name: &str, f: &dyn Fn(&Scores) -> f64| voxflow::plot::Series {
        name: name.to_string(),
        points: rows.iter().map(|r| (r.0 as f64, f(&r.2))).collect(),
    };
    ctx.add_chart(
        "accuracy",
        &voxflow::plot::lines(
            "eval.samples: class accuracy by step",
            "step",
            "accuracy",
            vec![curve("accuracy", &|s| s.accuracy)],
        ),
    )?;
    ctx.add_chart(
        "fid",
        &voxflow::plot::lines(
            "eval.samples: Frechet distance by step",
            "step",
            "FID (classifier features)",
            vec![curve("fid", &|s| s.fid)],
        ),
    )
}
