//! `union`: merge branches of one workflow back into one flow.

use std::rc::Rc;

use crate::builder::Flow;
use crate::data::Data;
use crate::error::Error;

impl<T: Data> Flow<T> {
    /// Merges this flow with `others` (branches of the same workflow): within an atom, this
    /// flow's events come first, then each other's in order.
    pub fn union(&self, others: &[&Flow<T>]) -> Flow<T> {
        let mut inputs = vec![self.node];
        for other in others {
            if !Rc::ptr_eq(&self.wf, &other.wf) {
                self.error(Error::InvalidPath {
                    path: other.describe(),
                    reason: format!("union of flows of two workflows (with {}); connect workflows through streams", self.describe()),
                });
            }
            inputs.push(other.node);
        }
        self.identity_of(inputs)
    }
}
