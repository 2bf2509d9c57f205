//! The generator is deterministic and writes what it says it writes.

use synth::{Generator, Register, splits};

fn kb() -> kb::KnowledgeBase {
    kb::load_dir(kb::default_dir()).expect("knowledge base loads")
}

#[test]
fn same_seed_same_cases_other_seed_other_cases() {
    let kb = kb();
    let a = Generator::new(&kb, 42).cases(300);
    let b = Generator::new(&kb, 42).cases(300);
    let c = Generator::new(&kb, 43).cases(300);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let s1 = splits(&kb, 7, 50, 20, 20);
    let s2 = splits(&kb, 7, 50, 20, 20);
    assert_eq!(s1.test, s2.test);
    assert_ne!(s1.train[..20], s1.test[..]);
}

#[test]
fn cases_are_well_formed_and_varied() {
    let kb = kb();
    let cases = Generator::new(&kb, 1).cases(3000);
    let mut registers = std::collections::HashSet::new();
    let mut conditions = std::collections::HashSet::new();
    let mut negated = 0;
    for c in &cases {
        assert!(!c.text.trim().is_empty() || !c.findings.is_empty(), "a case says something");
        let words = c.text.split_whitespace().count();
        assert!(words <= 160, "{words} words: {}", c.text);
        let cond = &kb.conditions[c.patient.condition];
        assert!(
            cond.admits_age(c.patient.age) || cond.pregnancy,
            "{} age {}",
            cond.id,
            c.patient.age
        );
        assert!(c.patient.level <= cond.urgency, "rules only raise the level");
        registers.insert(c.register);
        conditions.insert(c.patient.condition);
        if !c.text_absent.is_empty() {
            negated += 1;
        }
    }
    assert_eq!(registers.len(), Register::ALL.len());
    assert!(
        conditions.len() > kb.conditions.len() * 9 / 10,
        "{} conditions seen",
        conditions.len()
    );
    assert!(negated > 300, "{negated} cases with negations");
}

#[test]
fn print_samples() {
    let kb = kb();
    for c in Generator::new(&kb, 5).cases(12) {
        println!(
            "[{} | {} | {}] {}",
            c.register.as_str(),
            kb.conditions[c.patient.condition].id,
            c.patient.level,
            c.text
        );
    }
}
