//! Background jobs: named periodic tasks with their intervals, started with the app and
//! stopped with it. Each job is safe with several nodes: one whose effect must happen once
//! per cluster does its work in a write transaction (`Store::write`, which takes the
//! cluster-wide write lock on PostgreSQL) or claims rows; the others are per-node upkeep.
//! A failing run is logged with the job's name and retried at the next tick; evaluation
//! never waits on a job.

mod insights;
mod release;
mod upkeep;
mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub(crate) use insights::{flush_insights, insights};
pub(crate) use release::release;
pub(crate) use upkeep::upkeep;
pub(crate) use webhooks::webhooks;

type Run = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// One periodic job.
#[derive(Clone)]
pub(crate) struct Job {
    name: &'static str,
    every: Duration,
    run: Run,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish()
    }
}

impl Job {
    /// A job named `name` running `run` every `every` (first after one interval).
    pub(crate) fn new<F, Fut>(name: &'static str, every: Duration, run: F) -> Job
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Job {
            name,
            every,
            run: Arc::new(move || Box::pin(run())),
        }
    }
}

/// The running jobs; dropping or [`Runner::stop`] ends them.
#[derive(Debug, Default)]
pub(crate) struct Runner {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Runner {
    /// Starts every job on its own task.
    pub(crate) fn start(jobs: Vec<Job>) -> Runner {
        let tasks = jobs
            .into_iter()
            .map(|job| (job.name, tokio::spawn(run_forever(job))))
            .collect();
        Runner { tasks }
    }

    /// The names of the running jobs.
    #[cfg(test)]
    fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job (a run in progress is cancelled at its next await point; every job
    /// is written so that a cancelled run leaves nothing half done: its writes are one
    /// transaction).
    pub(crate) fn stop(&mut self) {
        for (_, task) in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run_forever(job: Job) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + job.every, job.every);
    // After a slow run, wait a whole interval again rather than catching up in a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = (job.run)().await {
            // The database being away is expected now and then; the next tick retries.
            tracing::debug!(job = job.name, error = format!("{e:#}"), "job run failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn jobs_run_at_their_interval_keep_going_after_failures_and_stop() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let job = Job::new("counting", Duration::from_secs(10), move || {
            let counter = counter.clone();
            async move {
                // Every other run fails; the job keeps its schedule anyway.
                if counter.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    anyhow::bail!("the database is away");
                }
                Ok(())
            }
        });
        let mut runner = Runner::start(vec![job]);
        assert_eq!(runner.names(), ["counting"]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "nothing before the first interval"
        );
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        runner.stop();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no run after stop");
    }
}
