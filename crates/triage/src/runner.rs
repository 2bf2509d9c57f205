//! The sequential runner: the four agents one after another on a batch, through the same
//! trait and the same merge as the coordinator. For evaluation and benchmarks; it never spawns
//! threads.

use crate::agent::{AgentModel, ModelAgent};
use crate::models::Models;
use crate::outcome::{AgentRun, AgentStatus, Outcome};
use domain::CaseInput;
use kb::{Case, KnowledgeBase};
use std::sync::Arc;
use std::time::Instant;

/// Agents run one after another, each through [`AgentModel::infer`], then merged
/// ([`Outcome::merge`]) as the coordinator merges them.
pub struct Runner {
    kb: Arc<KnowledgeBase>,
    /// Each agent with its version, read once.
    agents: Vec<(Arc<dyn AgentModel>, String)>,
}

impl Runner {
    /// A runner over the given agents (the four real ones: [`Runner::of`]).
    pub fn new(kb: Arc<KnowledgeBase>, agents: Vec<Arc<dyn AgentModel>>) -> Runner {
        let agents = agents.into_iter().map(|a| {
            let version = a.version();
            (a, version)
        });
        Runner { kb, agents: agents.collect() }
    }

    /// The four real models ([`ModelAgent::all`]).
    pub fn of(models: Arc<Models>) -> Runner {
        Runner::new(models.kb.clone(), ModelAgent::all(models))
    }

    pub fn kb(&self) -> &Arc<KnowledgeBase> {
        &self.kb
    }

    /// Every agent on a batch, one after another, then the merge; each text is read once
    /// ([`KnowledgeBase::prepare`]) for all of them.
    pub fn run_batch(
        &self,
        inputs: &[&CaseInput],
        max_conditions: usize,
        max_care: usize,
    ) -> Vec<Outcome> {
        let cases: Vec<Case> = inputs.iter().map(|i| self.kb.prepare((*i).clone())).collect();
        let refs: Vec<&Case> = cases.iter().collect();
        self.run_cases(&refs, max_conditions, max_care)
    }

    /// As [`Runner::run_batch`], on cases already prepared. The merge weighs what the agents
    /// return ([`crate::MAX_CONDITIONS`] conditions); the outcome keeps at most
    /// `max_conditions` conditions and `max_care` advice entries (which cannot be more than
    /// the agents return: [`crate::MAX_CONDITIONS`], [`crate::MAX_CARE`]). Each run's latency
    /// is its agent's time on the whole batch, and `total_ms` the whole batch's.
    pub fn run_cases(
        &self,
        cases: &[&Case],
        max_conditions: usize,
        max_care: usize,
    ) -> Vec<Outcome> {
        let started = Instant::now();
        let mut answers: Vec<(AgentRun, std::vec::IntoIter<_>)> = self
            .agents
            .iter()
            .map(|(agent, version)| {
                let t = Instant::now();
                let out = agent.infer(cases);
                assert_eq!(
                    out.len(),
                    cases.len(),
                    "{} gave one output per request",
                    agent.kind().as_str()
                );
                let run = AgentRun {
                    kind: agent.kind(),
                    version: version.clone(),
                    status: AgentStatus::Ok,
                    latency_ms: t.elapsed().as_secs_f64() * 1e3,
                };
                (run, out.into_iter())
            })
            .collect();
        let mut outcomes: Vec<Outcome> = cases
            .iter()
            .map(|case| {
                Outcome::merge(
                    &self.kb,
                    case,
                    answers.iter_mut().map(|(run, out)| (run.clone(), out.next())),
                )
            })
            .collect();
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        for o in &mut outcomes {
            o.total_ms = total_ms;
            if let Some(c) = &mut o.conditions {
                c.truncate(max_conditions);
            }
            if let Some(a) = &mut o.care {
                a.truncate(max_care);
            }
        }
        outcomes
    }

    pub fn run(&self, input: &CaseInput, max_conditions: usize, max_care: usize) -> Outcome {
        self.run_batch(&[input], max_conditions, max_care).pop().expect("one input, one answer")
    }
}
