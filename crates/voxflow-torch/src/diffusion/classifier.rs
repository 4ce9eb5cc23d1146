//! The CNN of `train.prototypes` and `train.classifier`, and its checkpoint
//! directory (config.json, model.safetensors).
//!
//! Features: conv 3x3 (1 -> C), GroupNorm, SiLU; conv 3x3 stride 2
//! (C -> 2C), GroupNorm, SiLU; conv 3x3 stride 2 (2C -> 2C), GroupNorm,
//! SiLU; mean over the pixels; linear (2C -> d). Heads: `prototype`, logits
//! -s ||f - c_k||^2 with learned prototypes c (classes x d, initialised
//! N(0, 1)); `linear`, logits W f + b.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};
use voxflow::kinds::train::prototypes::Head;

use super::groups;
use crate::train::TrainError;

/// The `format` of a checkpoint's config.json.
pub const FORMAT: &str = "voxflow.classifier/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub format: String,
    pub image_size: usize,
    pub channels: usize,
    pub feature_dim: usize,
    pub classes: usize,
    pub head: Head,
    pub class_names: Vec<String>,
}

pub struct Classifier {
    pub config: ClassifierConfig,
    pub vs: nn::VarStore,
    convs: Vec<(nn::Conv2D, nn::GroupNorm)>,
    project: nn::Linear,
    linear: Option<nn::Linear>,
    /// classes x feature_dim, with the prototype head.
    pub prototypes: Option<Tensor>,
}

impl Classifier {
    /// A fresh network initialised from libtorch's generator (seed it first).
    pub fn new(config: ClassifierConfig, device: Device) -> Classifier {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = config.channels as i64;
        let d = config.feature_dim as i64;
        let k = config.classes as i64;
        let widths = [(1, c, 1), (c, 2 * c, 2), (2 * c, 2 * c, 2)];
        let convs = widths
            .iter()
            .enumerate()
            .map(|(i, &(from, to, stride))| {
                let conv = nn::conv2d(
                    &root / format!("conv{i}"),
                    from,
                    to,
                    3,
                    nn::ConvConfig { padding: 1, stride, ..Default::default() },
                );
                (conv, nn::group_norm(&root / format!("norm{i}"), groups(to), to, Default::default()))
            })
            .collect();
        let project = nn::linear(&root / "project", 2 * c, d, Default::default());
        let (linear, prototypes) = match config.head {
            Head::Linear => (Some(nn::linear(&root / "linear", d, k, Default::default())), None),
            Head::Prototype { .. } => (None, Some(root.randn("prototypes", &[k, d], 0.0, 1.0))),
        };
        Classifier { config, vs, convs, project, linear, prototypes }
    }

    /// The features f of images [B, 1, S, S]: [B, feature_dim].
    pub fn features(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (conv, norm) in &self.convs {
            h = h.apply(conv).apply(norm).silu();
        }
        h.mean_dim(&[2i64, 3][..], false, Kind::Float).apply(&self.project)
    }

    /// The logits of features `f`.
    pub fn logits(&self, f: &Tensor) -> Tensor {
        match (&self.config.head, &self.linear, &self.prototypes) {
            (Head::Prototype { scale, .. }, _, Some(c)) => prototype_logits(f, c, *scale),
            (_, Some(linear), _) => f.apply(linear),
            _ => unreachable!("the head's parameters exist"),
        }
    }

    /// Writes config.json and model.safetensors into `dir`.
    pub fn write_files(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.config).expect("JSON") + "\n")
            .map_err(|e| TrainError::file(&path, e))?;
        let weights = dir.join("model.safetensors");
        super::save_variables(&self.vs, &weights)
    }

    /// A network from a directory written by [`Classifier::write_files`].
    pub fn load(dir: &Path, device: Device) -> Result<Classifier, TrainError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, format!("cannot read: {e}")))?;
        let config: ClassifierConfig = serde_json::from_str(&text)
            .map_err(|e| TrainError::file(&path, format!("not a train.classifier checkpoint config: {e}")))?;
        if config.format != FORMAT {
            return Err(TrainError::file(&path, format!("format `{}`, expected `{FORMAT}`", config.format)));
        }
        let mut classifier = Classifier::new(config, device);
        let weights = dir.join("model.safetensors");
        classifier.vs.load(&weights).map_err(|e| TrainError::file(&weights, e))?;
        Ok(classifier)
    }
}

/// -scale ||f_i - c_k||^2 for features f [B, d] and prototypes c [K, d]: [B, K].
pub fn prototype_logits(f: &Tensor, c: &Tensor, scale: f64) -> Tensor {
    (f.unsqueeze(1) - c.unsqueeze(0)).square().sum_dim_intlist(&[2i64][..], false, Kind::Float) * (-scale)
}

/// The mean over the batch of ||f_i - c_{y_i}||^2.
pub fn prototype_loss(f: &Tensor, c: &Tensor, labels: &Tensor) -> Tensor {
    (f - c.index_select(0, labels)).square().sum_dim_intlist(&[1i64][..], false, Kind::Float).mean(Kind::Float)
}
