//! The execution plan of a workflow: which task runs in which stage, and which outputs move
//! between partitions after a stage.

use crate::builder::spec::WorkflowSpec;

/// A workflow's task graph cut into stages at every `key_by`: a stage runs in every partition
/// at once; between stages, the outputs of the stage's `key_by` tasks move to the partitions
/// owning their keys.
pub(crate) struct Plan {
    /// Per node: how many consumers read its output in a step (downstream nodes and the sink).
    pub consumers: Vec<usize>,
    /// The node whose output is the workflow's output.
    pub sink: Option<usize>,
    /// The task nodes of each stage, in topological (node) order.
    pub stages: Vec<Vec<usize>>,
    /// Per stage: the nodes whose outputs are exchanged after it.
    pub exchanges: Vec<Vec<usize>>,
    /// Every task node, for a single partition, which runs all stages in one go.
    pub all: Vec<usize>,
}

impl Plan {
    /// The nodes whose outputs are exchanged after `stage` (none after the last stage).
    pub(crate) fn exchange_after(&self, stage: usize) -> &[usize] {
        match self.exchanges.get(stage) {
            Some(e) if stage + 1 < self.stages.len() => e,
            _ => &[],
        }
    }

    pub(crate) fn new(spec: &WorkflowSpec) -> Plan {
        let n = spec.nodes.len();
        let mut consumers = vec![0usize; n];
        for node in &spec.nodes {
            for &i in &node.inputs {
                if let Some(c) = consumers.get_mut(i) {
                    *c += 1;
                }
            }
        }
        if let Some(c) = spec.sink.and_then(|s| consumers.get_mut(s)) {
            *c += 1;
        }
        // A node's stage: one past its latest input's, plus one more after a key_by input.
        let mut stage = vec![0usize; n];
        for (i, node) in spec.nodes.iter().enumerate() {
            stage[i] = node
                .inputs
                .iter()
                .filter(|&&j| j < i)
                .map(|&j| stage[j] + usize::from(spec.nodes[j].keys))
                .max()
                .unwrap_or(0);
        }
        let count = stage.iter().copied().max().unwrap_or(0) + 1;
        let mut stages = vec![Vec::new(); count];
        let mut exchanges = vec![Vec::new(); count];
        for i in 1..n {
            stages[stage[i]].push(i);
            if spec.nodes[i].keys && consumers[i] > 0 {
                exchanges[stage[i]].push(i);
            }
        }
        Plan {
            consumers,
            sink: spec.sink,
            stages,
            exchanges,
            all: (1..n).collect(),
        }
    }
}
