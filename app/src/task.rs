//! The task panel: starts the demo task and follows its task stream to the final event.
//!
//! A task stream is short-lived (docs/contract.md §1.2): `progress` events, one `done`,
//! then the server ends the response. An `EventSource` would reconnect after that, so the
//! page closes it the moment `done` arrives, before handling the data.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::api::DemoJobRequest;

/// Where the panel's task stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskPhase {
    /// No task started yet.
    #[default]
    Idle,
    /// `POST /jobs/demo` sent, no answer yet.
    Starting,
    /// Following the task stream.
    Running,
    /// `done` with a result.
    Done,
    /// `done` with an error, or the task could not be started or followed.
    Failed,
}

impl TaskPhase {
    /// The word shown on the page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What the panel shows about the current task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskView {
    /// Counts started tasks, so that late answers for an older one are ignored.
    pub run: u64,
    /// The phase.
    pub phase: TaskPhase,
    /// The task id, once the server gave one.
    pub id: Option<String>,
    /// Steps done.
    pub step: u64,
    /// Steps in all.
    pub total: u64,
    /// The last progress message.
    pub message: Option<String>,
    /// The result (`Ok`) or the error (`Err`), once finished.
    pub outcome: Option<Result<String, String>>,
}

impl TaskView {
    /// Records the end of the task. A successful task is complete, so its bar is full even
    /// if the last progress event was lost.
    pub fn finish(&mut self, outcome: Result<String, String>) {
        if outcome.is_ok() {
            self.total = self.total.max(1);
            self.step = self.total;
            self.phase = TaskPhase::Done;
        } else {
            self.phase = TaskPhase::Failed;
        }
        self.outcome = Some(outcome);
    }
}

/// `<section aria-label="Task">`: "Steps", "Interval (ms)", "Start demo task", a
/// `<progress aria-label="Task progress">`, `data-testid` `task-progress` ("3 / 10"),
/// `task-state`, `task-message` and `task-result`.
#[component]
pub fn TaskPanel() -> impl IntoView {
    let steps = RwSignal::new("10".to_owned());
    let interval = RwSignal::new("1000".to_owned());
    let runner = Runner::new();
    let task = runner.view;

    let on_start = move |ev: SubmitEvent| {
        ev.prevent_default();
        let request = steps
            .get_untracked()
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| *s > 0)
            .zip(interval.get_untracked().trim().parse::<u64>().ok());
        match request {
            Some((steps, interval_ms)) => runner.start(DemoJobRequest { steps, interval_ms }),
            None => task.update(|t| {
                *t = TaskView { run: t.run + 1, ..TaskView::default() };
                t.finish(Err("Steps must be a whole number above 0 and the interval a \
                              whole number of milliseconds."
                    .to_owned()));
            }),
        }
    };

    let busy = move || task.with(|t| t.phase == TaskPhase::Starting);
    let max = move || task.with(|t| t.total.max(1)).to_string();
    let value = move || task.with(|t| t.step.min(t.total)).to_string();
    let counts = move || {
        task.with(|t| match t.phase {
            TaskPhase::Idle => "not started".to_owned(),
            _ => format!("{} / {}", t.step, t.total),
        })
    };
    let phase = move || task.with(|t| t.phase.label());
    let message = move || task.with(|t| t.message.clone().unwrap_or_default());
    let outcome = move || {
        task.with(|t| t.outcome.clone()).map(|outcome| {
            let (class, text) = match outcome {
                Ok(result) => ("result ok", result),
                Err(error) => ("result error", error),
            };
            view! {
                <output class=class data-testid="task-result">
                    {text}
                </output>
            }
        })
    };

    view! {
        <section class="card task" aria-label="Task">
            <h2>"Task"</h2>
            <form class="stack" aria-label="Demo task" autocomplete="off" on:submit=on_start>
                <div class="fields two">
                    <div class="field">
                        <label for="task-steps">"Steps"</label>
                        <input
                            id="task-steps"
                            name="steps"
                            type="number"
                            min="1"
                            inputmode="numeric"
                            bind:value=steps
                        />
                    </div>
                    <div class="field">
                        <label for="task-interval">"Interval (ms)"</label>
                        <input
                            id="task-interval"
                            name="interval_ms"
                            type="number"
                            min="0"
                            inputmode="numeric"
                            bind:value=interval
                        />
                    </div>
                </div>
                <button type="submit" disabled=busy>
                    "Start demo task"
                </button>
            </form>
            <div class="progress">
                <progress aria-label="Task progress" max=max value=value></progress>
                <div class="row between">
                    <span class="counts" data-testid="task-progress">{counts}</span>
                    <span class="badge phase" data-testid="task-state" data-phase=phase>
                        {phase}
                    </span>
                </div>
                <p class="hint" data-testid="task-message">{message}</p>
                {outcome}
            </div>
        </section>
    }
}

/// The panel's task state and, in the browser, the task stream it follows.
#[derive(Clone, Copy)]
struct Runner {
    view: RwSignal<TaskView>,
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    source: StoredValue<Option<send_wrapper::SendWrapper<crate::browser::Source>>>,
}

impl Runner {
    fn new() -> Self {
        let runner = Self {
            view: RwSignal::new(TaskView::default()),
            #[cfg(any(feature = "hydrate", feature = "csr"))]
            source: StoredValue::new(None),
        };
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        on_cleanup(move || drop(runner.source.try_update_value(Option::take)));
        runner
    }

    /// Starts a demo task, dropping (closing) the stream of any previous one.
    fn start(self, request: DemoJobRequest) {
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        {
            use crate::{api::JobCreated, browser};

            drop(self.source.try_update_value(Option::take));
            let mut run = 0;
            self.view.update(|t| {
                run = t.run + 1;
                *t = TaskView {
                    run,
                    phase: TaskPhase::Starting,
                    total: u64::from(request.steps),
                    ..TaskView::default()
                };
            });
            leptos::task::spawn_local(async move {
                let created = browser::post_json::<_, JobCreated>("/jobs/demo", &request).await;
                if self.view.with_untracked(|t| t.run) != run {
                    return; // a newer task was started meanwhile
                }
                match created {
                    Ok(job) => self.follow(job),
                    Err(error) => self.view.update(|t| t.finish(Err(error))),
                }
            });
        }
        // The server never starts tasks from the page.
        #[cfg(not(any(feature = "hydrate", feature = "csr")))]
        let _ = (self, request);
    }

    /// Opens the task stream and keeps [`TaskView`] in step with it.
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    fn follow(self, job: crate::api::JobCreated) {
        use crate::{
            api::{self, Progress},
            browser::{self, AfterError, Source},
        };

        let view = self.view;
        let Ok(mut source) = Source::open(&job.events) else {
            view.update(|t| t.finish(Err(format!("Cannot open {}", job.events))));
            return;
        };
        view.update(|t| {
            t.phase = TaskPhase::Running;
            t.id = Some(job.id);
        });
        source.on("progress", move |event| {
            if let Ok(progress) = serde_json::from_str::<Progress>(&browser::event_data(&event)) {
                view.update(|t| {
                    t.step = progress.step;
                    t.total = progress.total;
                    if progress.message.is_some() {
                        t.message = progress.message;
                    }
                });
            }
        });
        let es = source.handle();
        source.on("done", move |event| {
            // First: after `done` the server ends the response, and an open EventSource
            // would reconnect and ask for the stream again.
            es.close();
            let outcome = api::task_outcome(&browser::event_data(&event));
            view.update(|t| t.finish(outcome));
        });
        source.on_error(move |after| {
            // While the browser retries, the server replays the task's events; only a
            // stream the browser gave up on before `done` is a failure.
            if after == AfterError::Closed {
                view.update(|t| {
                    if t.outcome.is_none() {
                        t.finish(Err("The task stream closed before the task finished.".into()));
                    }
                });
            }
        });
        self.source.set_value(Some(send_wrapper::SendWrapper::new(source)));
    }
}
