//! A small U-Net for epsilon prediction, conditioned on the timestep and a
//! class embedding, and its checkpoint directory (config.json,
//! model.safetensors).
//!
//! Layout (C = `channels`, S = `image_size`, a multiple of 4):
//! conv_in (1 -> C); res1 (C, S); down1 (3x3 stride 2); res2 (C -> 2C, S/2);
//! down2; mid (2C, S/4); nearest 2x up, concat res2's output, up2
//! (4C -> 2C); 2x up, concat res1's output, up1 (3C -> C); GroupNorm, SiLU,
//! conv_out (C -> 1). A residual block is GroupNorm, SiLU, 3x3 conv, plus a
//! linear map of the embedding (broadcast over the pixels), GroupNorm,
//! SiLU, 3x3 conv, plus the input (1x1 conv where the widths differ). The
//! embedding is SiLU(time + class): time is the sinusoidal embedding of t
//! (C dims, periods up to 10000) through Linear-SiLU-Linear to 4C; class is
//! the class table's row (or the learned null row, index `classes`, for
//! the unconditional prediction) through a Linear to 4C.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use super::groups;
use crate::train::TrainError;

/// The `format` of a checkpoint's config.json.
pub const FORMAT: &str = "voxflow.ddpm/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    pub format: String,
    pub image_size: usize,
    pub channels: usize,
    pub embed_dim: usize,
    pub classes: usize,
    pub timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    /// The conditioning mode it was trained with (`regular`, `proto_frozen`, ...).
    pub mode: String,
    /// Whether the class table was trained.
    pub learned_table: bool,
    /// The class names, in label order.
    pub class_names: Vec<String>,
}

struct ResBlock {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    emb: nn::Linear,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2D,
    skip: Option<nn::Conv2D>,
}

fn conv3(p: nn::Path, i: i64, o: i64, stride: i64) -> nn::Conv2D {
    nn::conv2d(p, i, o, 3, nn::ConvConfig { padding: 1, stride, ..Default::default() })
}

impl ResBlock {
    fn new(p: nn::Path, i: i64, o: i64, emb_dim: i64) -> ResBlock {
        ResBlock {
            norm1: nn::group_norm(&p / "norm1", groups(i), i, Default::default()),
            conv1: conv3(&p / "conv1", i, o, 1),
            emb: nn::linear(&p / "emb", emb_dim, o, Default::default()),
            norm2: nn::group_norm(&p / "norm2", groups(o), o, Default::default()),
            conv2: conv3(&p / "conv2", o, o, 1),
            skip: (i != o).then(|| nn::conv2d(&p / "skip", i, o, 1, Default::default())),
        }
    }

    fn forward(&self, x: &Tensor, emb: &Tensor) -> Tensor {
        let h = x.apply(&self.norm1).silu().apply(&self.conv1);
        let h = h + emb.apply(&self.emb).unsqueeze(-1).unsqueeze(-1);
        let h = h.apply(&self.norm2).silu().apply(&self.conv2);
        match &self.skip {
            Some(skip) => h + x.apply(skip),
            None => h + x,
        }
    }
}

pub struct UNet {
    pub config: UNetConfig,
    pub vs: nn::VarStore,
    /// classes x embed_dim (trained or not, per the config).
    pub class_table: Tensor,
    /// 1 x embed_dim: the unconditional embedding, always trained.
    pub null_embedding: Tensor,
    conv_in: nn::Conv2D,
    time1: nn::Linear,
    time2: nn::Linear,
    class_proj: nn::Linear,
    res1: ResBlock,
    down1: nn::Conv2D,
    res2: ResBlock,
    down2: nn::Conv2D,
    mid: ResBlock,
    up2: ResBlock,
    up1: ResBlock,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl UNet {
    /// A fresh U-Net initialised from libtorch's generator (seed it first),
    /// with `table` (classes x embed_dim) as its class table.
    pub fn new(config: UNetConfig, table: &Tensor, device: Device) -> UNet {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = config.channels as i64;
        let emb_dim = 4 * c;
        let d = config.embed_dim as i64;
        let class_table = if config.learned_table {
            root.var_copy("class_table", table)
        } else {
            let t = root.zeros_no_train("class_table", &[config.classes as i64, d]);
            tch::no_grad(|| t.shallow_clone().copy_(table));
            t
        };
        let null_embedding = root.randn("null_embedding", &[1, d], 0.0, 1.0);
        UNet {
            conv_in: conv3(&root / "conv_in", 1, c, 1),
            time1: nn::linear(&root / "time1", c, emb_dim, Default::default()),
            time2: nn::linear(&root / "time2", emb_dim, emb_dim, Default::default()),
            class_proj: nn::linear(&root / "class_proj", d, emb_dim, Default::default()),
            res1: ResBlock::new(&root / "res1", c, c, emb_dim),
            down1: conv3(&root / "down1", c, c, 2),
            res2: ResBlock::new(&root / "res2", c, 2 * c, emb_dim),
            down2: conv3(&root / "down2", 2 * c, 2 * c, 2),
            mid: ResBlock::new(&root / "mid", 2 * c, 2 * c, emb_dim),
            up2: ResBlock::new(&root / "up2", 4 * c, 2 * c, emb_dim),
            up1: ResBlock::new(&root / "up1", 3 * c, c, emb_dim),
            norm_out: nn::group_norm(&root / "norm_out", groups(c), c, Default::default()),
            conv_out: conv3(&root / "conv_out", c, 1, 1),
            class_table,
            null_embedding,
            config,
            vs,
        }
    }

    /// The class embeddings of `labels` (int64; `classes` is the null embedding).
    pub fn embed(&self, labels: &Tensor) -> Tensor {
        Tensor::cat(&[&self.class_table, &self.null_embedding], 0).index_select(0, labels)
    }

    /// The sinusoidal embedding of the int64 timesteps `t`: [B, dim].
    pub fn timestep_embedding(t: &Tensor, dim: i64) -> Tensor {
        let half = dim / 2;
        let freqs =
            (Tensor::arange(half, (Kind::Float, t.device())) * (-(10000f64.ln()) / half as f64)).exp().unsqueeze(0);
        let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs;
        let emb = Tensor::cat(&[args.sin(), args.cos()], 1);
        if dim % 2 == 1 {
            Tensor::cat(&[emb, Tensor::zeros([t.size()[0], 1], (Kind::Float, t.device()))], 1)
        } else {
            emb
        }
    }

    /// The predicted noise for images `x` at timesteps `t` (int64) under labels `labels` (int64, `classes` = none).
    pub fn forward(&self, x: &Tensor, t: &Tensor, labels: &Tensor) -> Tensor {
        let c = self.config.channels as i64;
        let time = Self::timestep_embedding(t, c).apply(&self.time1).silu().apply(&self.time2);
        let emb = (time + self.embed(labels).apply(&self.class_proj)).silu();
        let h1 = self.res1.forward(&x.apply(&self.conv_in), &emb);
        let h2 = self.res2.forward(&h1.apply(&self.down1), &emb);
        let m = self.mid.forward(&h2.apply(&self.down2), &emb);
        let size = |h: &Tensor| [h.size()[2], h.size()[3]];
        let u2 = m.upsample_nearest2d(size(&h2), None, None);
        let u2 = self.up2.forward(&Tensor::cat(&[u2, h2.shallow_clone()], 1), &emb);
        let u1 = u2.upsample_nearest2d(size(&h1), None, None);
        let u1 = self.up1.forward(&Tensor::cat(&[u1, h1], 1), &emb);
        u1.apply(&self.norm_out).silu().apply(&self.conv_out)
    }

    /// The trained parameters, by name, sorted (AdamW's list; decay on weights of rank >= 2).
    pub fn trained_parameters(&self) -> Vec<(String, Tensor, bool)> {
        let mut named: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
            .into_iter()
            .map(|(name, t)| {
                let decay = t.dim() >= 2 && name != "class_table" && name != "null_embedding";
                (name, t, decay)
            })
            .collect()
    }

    /// Writes config.json and model.safetensors into `dir`.
    pub fn write_files(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.config).expect("JSON") + "\n")
            .map_err(|e| TrainError::file(&path, e))?;
        let weights = dir.join("model.safetensors");
        super::save_variables(&self.vs, &weights)
    }

    /// A U-Net from a directory written by [`UNet::write_files`].
    pub fn load(dir: &Path, device: Device) -> Result<UNet, TrainError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, format!("cannot read: {e}")))?;
        let config: UNetConfig = serde_json::from_str(&text)
            .map_err(|e| TrainError::file(&path, format!("not a train.ddpm checkpoint config: {e}")))?;
        if config.format != FORMAT {
            return Err(TrainError::file(&path, format!("format `{}`, expected `{FORMAT}`", config.format)));
        }
        let table = Tensor::zeros([config.classes as i64, config.embed_dim as i64], (Kind::Float, device));
        let mut unet = UNet::new(config, &table, device);
        let weights = dir.join("model.safetensors");
        unet.vs.load(&weights).map_err(|e| TrainError::file(&weights, e))?;
        Ok(unet)
    }
}

/// The noise predicted under classifier-free guidance with weight `w`:
/// conditional and unconditional predictions in one batch, then
/// [`super::schedule::guide`].
pub fn guided_eps(unet: &UNet, x: &Tensor, t: &Tensor, labels: &Tensor, weight: f64) -> Tensor {
    let n = x.size()[0];
    let null = labels.full_like(unet.config.classes as i64);
    let both = unet.forward(&Tensor::cat(&[x, x], 0), &Tensor::cat(&[t, t], 0), &Tensor::cat(&[labels, &null], 0));
    let conditional = both.narrow(0, 0, n);
    let unconditional = both.narrow(0, n, n);
    super::schedule::guide(&conditional, &unconditional, weight)
}

/// DDIM sampling (eta 0) from the noise `x` with guidance weight `w`, visiting
/// [`super::schedule::NoiseSchedule::ddim_timesteps`]`(steps)`.
pub fn ddim_sample(
    unet: &UNet,
    schedule: &super::schedule::NoiseSchedule,
    x: Tensor,
    labels: &Tensor,
    steps: usize,
    weight: f64,
) -> Tensor {
    let _guard = tch::no_grad_guard();
    let ts = schedule.ddim_timesteps(steps);
    let n = x.size()[0];
    let mut x = x;
    for (i, &t) in ts.iter().enumerate() {
        let t_tensor = Tensor::full([n], t as i64, (Kind::Int64, x.device()));
        let eps = guided_eps(unet, &x, &t_tensor, labels, weight);
        x = schedule.ddim_step(&x, &eps, t, ts.get(i + 1).copied());
    }
    x
}
