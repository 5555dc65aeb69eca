//! memgen-diffusion: DDPM schedules, UNet denoisers, training runs, checkpoints and shared-noise samplers.
//!
//! Ho, Jain & Abbeel 2020 (arXiv:2006.11239) for the DDPM; Song, Meng & Ermon 2020 (arXiv:2010.02502)
//! for DDIM; Kadkhodaie, Guth, Simoncelli & Mallat 2024 (arXiv:2310.02557) for the blind denoiser and
//! its sampler. The UNet never sees the schedule and the samplers never see the UNet: they meet in
//! [`Denoiser`].

pub mod denoiser;
pub mod init;
pub mod noise;
pub mod schedule;

pub use denoiser::{Denoiser, Prediction};
pub use noise::NoiseSource;
pub use schedule::{BetaSchedule, DdpmSchedule, ScheduleConfig};
pub mod blind;
pub mod blind_engine;
pub mod blocks;
pub mod checkpoint;
pub mod embeddings;
pub mod error;
pub mod optim;
pub mod sampler;
pub mod shards;
pub mod unet;

pub use error::{Error, Result};
pub mod generate;
pub mod model;
pub mod objective;
pub mod run;
pub mod train;

pub use model::{Model, ModelConfig};
