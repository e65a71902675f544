//! CPU-heavy work of a request (profile validation) runs on tokio's blocking threads, never on
//! the async workers that serve every other request: a huge resource being validated must not
//! delay a read or `/health`. At most one such job per core runs at a time; more wait their
//! turn, so a burst of heavy requests queues instead of multiplying memory and CPU contention.

use crate::DomainError;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub(crate) struct CpuWork {
    permits: Arc<Semaphore>,
}

impl CpuWork {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuWork {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Runs `job` on a blocking thread once a core is free. A panic inside it is an internal
    /// error of this request only.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, DomainError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DomainError::Internal("the CPU work queue is closed".into()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| DomainError::Internal(format!("CPU-bound work failed: {e}")))
    }
}
