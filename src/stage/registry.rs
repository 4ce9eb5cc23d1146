//! The registry: [`KINDS`] lists every stage kind voxflow knows, one line
//! each. Adding a kind is one file under src/kinds/, one line here, one
//! test and one example under pipelines/.

use super::Stage;
use crate::kinds;

/// Every stage kind. Keep sorted by name.
pub static KINDS: &[&dyn Stage] = &[
    &kinds::align::AlignTrs,
    &kinds::align::AlignWords,
    &kinds::alignment::summary::AlignmentSummary,
    &kinds::alignment::benchmark::BenchmarkGenerate,
    &kinds::alignment::benchmark::BenchmarkSentences,
    &kinds::alignment::table::BenchmarkTable,
    &kinds::command::Command,
    &kinds::competence::facts::CompetenceFacts,
    &kinds::competence::minimal_pairs::CompetenceMinimalPairs,
    &kinds::corpus::CorpusGrammar,
    &kinds::corpus::CorpusText,
    &kinds::downsample::Downsample,
    &kinds::eval::samples::EvalSamples,
    &kinds::evaluate::Evaluate,
    &kinds::features::FromTable,
    &kinds::features::lm::FeaturesLm,
    &kinds::features::RandomEmbedding,
    &kinds::features::TemporalBaseline,
    &kinds::features::WordRate,
    &kinds::images::digits::ImagesDigits,
    &kinds::images::folder::ImagesFolder,
    &kinds::images::shapes::ImagesShapes,
    &kinds::lag::Lag,
    &kinds::load::LoadMatrix,
    &kinds::load::responses::LoadResponses,
    &kinds::load::LoadTable,
    &kinds::alignment::localize::LocalizeUnits,
    &kinds::prep::Prep,
    &kinds::ridge::Ridge,
    &kinds::stimuli::contrast::StimuliContrast,
    &kinds::stimuli::facts::StimuliFacts,
    &kinds::stimuli::langloc::StimuliLangloc,
    &kinds::stimuli::sentiment::StimuliSentiment,
    &kinds::stimuli::minimal_pairs::StimuliMinimalPairs,
    &kinds::stimuli::syntaxgym::StimuliSyntaxGym,
    &kinds::synth::Synth,
    &kinds::topo::moran::TopoMoran,
    &kinds::topo::pca::TopoPca,
    &kinds::topo::responses::TopoResponses,
    &kinds::topo::selectivity::TopoSelectivity,
    &kinds::topo::smoothness::TopoSmoothness,
    &kinds::topo::tgi::TopoTgi,
    &kinds::topoformer::TopoformerResponses,
    &kinds::train::TrainGpt,
    &kinds::train::topoformer::TrainTopoformer,
    &kinds::train::prototypes::TrainClassifier,
    &kinds::train::ddpm::TrainDdpm,
    &kinds::train::prototypes::TrainPrototypes,
];

/// The kind named `kind`.
pub fn lookup(kind: &str) -> Option<&'static dyn Stage> {
    KINDS.iter().copied().find(|stage| stage.kind() == kind)
}
