//! Training is reproducible from a seed. Its own test binary: Burn's seeded initialisation
//! draws from a shared generator, so nothing else may run beside it.

use ml::train::{Quiet, TrainConfig};

#[test]
fn same_seed_same_model() {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let data = synth::splits(&kb, 99, 300, 60, 60);
    let cfg = TrainConfig { epochs: 1, batch_size: 64, learning_rate: 1e-2, seed: 99 };
    let (a, ma) = triage::models::symptoms::train::train(&kb, &data, cfg.clone(), &mut Quiet);
    let (b, mb) = triage::models::symptoms::train::train(&kb, &data, cfg, &mut Quiet);
    let input = domain::CaseInput {
        text: "headache and a stiff neck, no rash".into(),
        ..Default::default()
    };
    let input = kb.prepare(input);
    assert_eq!(a.probabilities(&[&input]), b.probabilities(&[&input]));
    assert_eq!(ma.present_f1, mb.present_f1);
}
