//! The push form: sends a message to a client id, a topic or everyone through `POST /push`.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::{
    api::{PushRequest, PushTargetKind},
    stream::ClientStream,
};

/// `<form aria-label="Push a message">` with "Target", "Target id", "Message", "Event name"
/// and "Send"; the outcome appears in `data-testid="push-result"` (`role="status"`).
#[component]
pub fn PushForm(stream: ClientStream) -> impl IntoView {
    let target = RwSignal::new(PushTargetKind::default().value().to_owned());
    let target_id = RwSignal::new(String::new());
    let message = RwSignal::new(String::new());
    let event = RwSignal::new(String::new());
    let sending = RwSignal::new(false);
    let outcome = RwSignal::new(None::<Result<String, String>>);

    let kind = move || PushTargetKind::from_value(&target.get());

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let kind = PushTargetKind::from_value(&target.get_untracked());
        let body = PushRequest::new(
            kind,
            &target_id.get_untracked(),
            message.get_untracked(),
            &event.get_untracked(),
        );
        let missing = match kind {
            PushTargetKind::Client if body.client_id.as_deref() == Some("") => "a client id",
            PushTargetKind::Topic if body.topic.as_deref() == Some("") => "a topic",
            _ => "",
        };
        if !missing.is_empty() {
            outcome.set(Some(Err(format!("Enter {missing} in “Target id”."))));
            return;
        }
        // Listen before sending, so a message to this very tab is not missed.
        if let Some(name) = &body.event {
            stream.listen_for(name);
        }
        send(body, sending, outcome);
    };

    let result_text = move || match outcome.get() {
        Some(Ok(text) | Err(text)) => text,
        None => String::new(),
    };
    let result_kind = move || match outcome.get() {
        Some(Ok(_)) => "ok",
        Some(Err(_)) => "error",
        None => "none",
    };
    let placeholder = move || match kind() {
        PushTargetKind::Client => "tab-…",
        PushTargetKind::Topic => "news",
        PushTargetKind::Everyone => "not needed for everyone",
    };
    let options = PushTargetKind::ALL
        .into_iter()
        .map(|k| view! { <option value=k.value()>{k.label()}</option> })
        .collect_view();

    view! {
        <section class="card push" aria-label="Push">
            <h2>"Push"</h2>
            <form class="stack" aria-label="Push a message" autocomplete="off" on:submit=on_submit>
                <div class="fields two">
                    <div class="field">
                        <label for="push-target">"Target"</label>
                        <select id="push-target" name="target" bind:value=target>
                            {options}
                        </select>
                    </div>
                    <div class="field">
                        <label for="push-target-id">"Target id"</label>
                        <input
                            id="push-target-id"
                            name="target_id"
                            type="text"
                            class="mono"
                            placeholder=placeholder
                            disabled=move || kind() == PushTargetKind::Everyone
                            bind:value=target_id
                        />
                    </div>
                </div>
                <div class="field">
                    <label for="push-message">"Message"</label>
                    <textarea id="push-message" name="message" rows="3" bind:value=message></textarea>
                </div>
                <div class="field">
                    <label for="push-event">"Event name"</label>
                    <input
                        id="push-event"
                        name="event"
                        type="text"
                        placeholder="message"
                        aria-describedby="push-event-hint"
                        bind:value=event
                    />
                    <p id="push-event-hint" class="hint">
                        "Optional. Other tabs show a named event only if they listen for it."
                    </p>
                </div>
                <div class="row">
                    <button type="submit" disabled=move || sending.get()>
                        "Send"
                    </button>
                    <p
                        class="result"
                        role="status"
                        data-testid="push-result"
                        data-outcome=result_kind
                    >
                        {result_text}
                    </p>
                </div>
            </form>
        </section>
    }
}

/// Posts `body` to `/push` and shows the answer: `Delivered to N connection(s)` or the error.
fn send(
    body: PushRequest,
    sending: RwSignal<bool>,
    outcome: RwSignal<Option<Result<String, String>>>,
) {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    leptos::task::spawn_local(async move {
        use crate::{api::PushResponse, browser};

        sending.set(true);
        let answer = browser::post_json::<_, PushResponse>("/push", &body).await;
        outcome.set(Some(answer.map(|r| r.summary())));
        sending.set(false);
    });
    // The server never submits the form.
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    let _ = (body, sending, outcome);
}
