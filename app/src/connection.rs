//! The connection panel: this tab's client id, the stream's state, and its topics.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::{api, stream::ClientStream};

/// Shows the client id (`data-testid="client-id"`) and the connection state
/// (`role="status"`, `data-testid="connection-state"`), and lets the tab subscribe to topics.
#[component]
pub fn ConnectionPanel(stream: ClientStream) -> impl IntoView {
    let topics_text = RwSignal::new(String::new());
    let topics_error = RwSignal::new(None::<String>);

    let on_subscribe = move |ev: SubmitEvent| {
        ev.prevent_default();
        match api::parse_topics(&topics_text.get_untracked()) {
            Ok(topics) => {
                topics_error.set(None);
                // Always set, even if unchanged: "Subscribe" also reopens a closed stream.
                stream.topics.set(topics);
            }
            Err(error) => topics_error.set(Some(error)),
        }
    };

    let client_id = move || stream.client_id.get().unwrap_or_else(|| "…".to_owned());
    let state = move || stream.state.get().label();
    let subscribed =
        move || {
            stream.topics.with(|topics| {
                if topics.is_empty() { "none".to_owned() } else { topics.join(", ") }
            })
        };

    view! {
        <section class="card connection" aria-label="Connection">
            <h2>"Connection"</h2>
            <dl class="facts">
                <dt>"Your client id"</dt>
                <dd>
                    <code class="id" data-testid="client-id">{client_id}</code>
                </dd>
                <dt>"State"</dt>
                <dd>
                    <span
                        class="badge state"
                        role="status"
                        data-testid="connection-state"
                        data-state=state
                    >
                        {state}
                    </span>
                </dd>
                {move || {
                    stream
                        .refusal
                        .get()
                        .map(|why| {
                            view! {
                                <dd class="error" role="alert" data-testid="connection-error">
                                    {why}
                                </dd>
                            }
                        })
                }}
                {move || {
                    stream
                        .slow
                        .get()
                        .map(|hint| {
                            view! {
                                <dd class="hint" role="note" data-testid="connection-hint">
                                    {hint}
                                </dd>
                            }
                        })
                }}
                <dt>"Subscribed topics"</dt>
                <dd data-testid="subscribed-topics">{subscribed}</dd>
            </dl>
            <form class="stack" aria-label="Subscription" autocomplete="off" on:submit=on_subscribe>
                <label for="topics">"Topics"</label>
                <div class="row">
                    <input
                        id="topics"
                        name="topics"
                        type="text"
                        placeholder="news, sport/football"
                        aria-describedby="topics-hint"
                        bind:value=topics_text
                    />
                    <button type="submit">"Subscribe"</button>
                </div>
                <p id="topics-hint" class="hint">
                    "Comma separated. Subscribing reconnects this tab's stream."
                </p>
                {move || {
                    topics_error
                        .get()
                        .map(|error| {
                            view! {
                                <p class="error" role="alert" data-testid="topics-error">
                                    {error}
                                </p>
                            }
                        })
                }}
            </form>
        </section>
    }
}
