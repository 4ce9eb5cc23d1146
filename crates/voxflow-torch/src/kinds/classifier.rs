//! `train.prototypes` and `train.classifier` in the worker (the kinds'
//! params and checks are `voxflow::kinds::train::prototypes`): AdamW with
//! a cosine schedule (to a tenth of the rate) on minibatches drawn with
//! replacement from the train split, each step's draw seeded by (seed,
//! step); then the test split's accuracy.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use tch::{Kind, Tensor};
use voxflow::artifact::MatrixArtifact;
use voxflow::device::Device;
use voxflow::kinds::images::ImageSet;
use voxflow::kinds::train::prototypes::{ClassifierParams, Head};
use voxflow::numeric::Matrix;
use voxflow::stage::{StageContext, StageError};

use crate::diffusion::classifier::{prototype_loss, Classifier, ClassifierConfig, FORMAT};
use crate::diffusion::{images_tensor, step_seed, to_vec};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};

struct Row {
    step: usize,
    loss: f64,
    ce_loss: f64,
    proto_loss: f64,
    accuracy: f64,
}

/// The fraction of `images` the classifier labels as `labels`, in batches of 500.
pub fn accuracy(classifier: &Classifier, images: &Tensor, labels: &Tensor) -> f64 {
    let _guard = tch::no_grad_guard();
    let n = images.size()[0];
    let mut correct = 0i64;
    let mut start = 0;
    while start < n {
        let len = (n - start).min(500);
        let logits = classifier.logits(&classifier.features(&images.narrow(0, start, len)));
        correct += logits.argmax(1, false).eq_tensor(&labels.narrow(0, start, len)).sum(Kind::Int64).int64_value(&[]);
        start += len;
    }
    correct as f64 / n.max(1) as f64
}

pub fn train_classifier(p: &ClassifierParams, head: Head, ctx: &mut StageContext) -> Result<(), StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    if let Device::Cuda(_) = device {
        ctx.nondeterministic("training on CUDA: cuDNN convolutions are not bitwise reproducible");
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let torch_device = crate::device::to_tch(device);
    let set = ImageSet::read(ctx.input("images")?, "images")?;
    let train_rows = set.split_indices(false);
    let test_rows = set.split_indices(true);
    if train_rows.is_empty() {
        return Err(
            StageError::failed("the images' train split is empty").with_hint("lower the images stage's test_fraction")
        );
    }
    let (train_images, train_labels) = images_tensor(&set, &train_rows, torch_device);
    let (test_images, test_labels) = images_tensor(&set, &test_rows, torch_device);

    tch::manual_seed(step_seed(p.seed, u64::MAX));
    let config = ClassifierConfig {
        format: FORMAT.to_string(),
        image_size: set.size,
        channels: p.channels,
        feature_dim: p.feature_dim,
        classes: set.classes(),
        head,
        class_names: set.class_names.clone(),
    };
    let classifier = Classifier::new(config, torch_device);
    let mut named: Vec<(String, Tensor)> = classifier.vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let params = named.into_iter().map(|(name, t)| (name.clone(), t, name.ends_with("weight"))).collect();
    let mut optimizer =
        AdamW::new(AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: p.weight_decay }, params);
    let schedule =
        Schedule { learning_rate: p.learning_rate, min_lr: p.learning_rate / 10.0, warmup_steps: 0, steps: p.steps };
    let n_train = train_rows.len() as i64;
    let mut rows = Vec::with_capacity(p.steps);
    ctx.progress_unit("steps");
    for step in 0..p.steps {
        ctx.check_cancelled()?;
        tch::manual_seed(step_seed(p.seed, step as u64));
        let index = Tensor::randint(n_train, [p.batch_size as i64], (Kind::Int64, torch_device));
        let x = train_images.index_select(0, &index);
        let y = train_labels.index_select(0, &index);
        optimizer.zero_grad();
        let f = classifier.features(&x);
        let logits = classifier.logits(&f);
        let ce = logits.cross_entropy_for_logits(&y);
        let (loss, proto) = match (head, &classifier.prototypes) {
            (Head::Prototype { prototype_weight, .. }, Some(c)) => {
                let proto = prototype_loss(&f, c, &y);
                (&ce + &proto * prototype_weight, proto.double_value(&[]))
            }
            _ => (ce.shallow_clone(), 0.0),
        };
        loss.backward();
        optimizer.clip_grad_norm(0.0);
        optimizer.step(schedule.lr(step));
        let correct = logits.argmax(1, false).eq_tensor(&y).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        rows.push(Row {
            step: step + 1,
            loss: loss.double_value(&[]),
            ce_loss: ce.double_value(&[]),
            proto_loss: proto,
            accuracy: correct,
        });
        ctx.progress(step as u64 + 1, p.steps as u64);
    }
    let test_accuracy =
        if test_rows.is_empty() { None } else { Some(accuracy(&classifier, &test_images, &test_labels)) };
    tracing::info!(stage = ctx.name, "test accuracy {test_accuracy:?}");

    let model_dir = ctx.out_dir.join("model");
    std::fs::create_dir_all(&model_dir).map_err(|e| StageError::failed(format!("{}: {e}", model_dir.display())))?;
    classifier.write_files(&model_dir).map_err(|e| StageError::failed(e.to_string()))?;
    ctx.add_dir("model", "model");
    if let Some(prototypes) = &classifier.prototypes {
        let (k, d) = (set.classes(), p.feature_dim);
        let mut artifact = MatrixArtifact::new(Matrix::from_vec(k, d, to_vec(prototypes)));
        artifact.row_labels = vec![("class".to_string(), (0..k).map(|c| c as f64).collect())];
        artifact.metadata = BTreeMap::from([("class_names".to_string(), set.class_names.join(","))]);
        ctx.write_matrix("prototypes", &artifact)?;
    }
    let last = rows.len();
    let schema = Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("ce_loss", DataType::Float64, false),
        Field::new("proto_loss", DataType::Float64, false),
        Field::new("accuracy", DataType::Float64, false),
        Field::new("test_accuracy", DataType::Float64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step as i64))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ce_loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.proto_loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.accuracy))),
        Arc::new(Float64Array::from_iter((1..=last).map(|i| if i == last { test_accuracy } else { None }))),
    ];
    let table = RecordBatch::try_new(Arc::new(schema), columns).expect("metrics schema");
    ctx.write_table("metrics", &table)
}
