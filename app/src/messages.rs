//! The list of messages this tab's client stream received, newest last.

use leptos::prelude::*;

use crate::stream::{ClientStream, Received};

/// `<ol aria-label="Messages">`, one `data-testid="message"` item per message with its time,
/// event name, target kind and data (each also with its own test id).
#[component]
pub fn MessageList(stream: ClientStream) -> impl IntoView {
    let empty = move || stream.messages.with(Vec::is_empty);

    view! {
        <section class="card messages" aria-label="Received messages">
            <h2>"Messages"</h2>
            <p class="hint">
                "Shown: the default " <code>"message"</code>
                " event and any event name this tab has pushed with. "
                "A browser receives a named event only if it asks for that name."
            </p>
            <Show when=move || stream.gap.get()>
                <p class="notice" role="alert" data-testid="gap-notice">
                    "Some messages may have been missed while this tab was away."
                </p>
            </Show>
            <Show when=empty>
                <p class="empty">"No messages yet."</p>
            </Show>
            // Reversed flex keeps the view scrolled to the newest message.
            <div class="scroll-bottom">
                <ol class="message-list" aria-label="Messages">
                    <For
                        each=move || stream.messages.get()
                        key=|message| message.seq
                        children=|message: Received| {
                            let kind = message.kind.label();
                            view! {
                                <li
                                    class="message"
                                    data-testid="message"
                                    data-kind=kind
                                    data-event-id=message.id
                                >
                                    <time class="time" data-testid="message-time">
                                        {message.time}
                                    </time>
                                    <span class="event" data-testid="message-event">
                                        {message.event}
                                    </span>
                                    <span class=format!("kind kind-{kind}") data-testid="message-kind">
                                        {kind}
                                    </span>
                                    <span class="data" data-testid="message-data">
                                        {message.data}
                                    </span>
                                </li>
                            }
                        }
                    />
                </ol>
            </div>
        </section>
    }
}
