//! The connected-clients panel: `GET /clients`, polled every two seconds.
//!
//! Polling rather than a presence stream keeps the page on the contract's plain JSON API;
//! two seconds is quick enough for a person watching tabs come and go.

use leptos::prelude::*;

/// How often the list is refreshed, in milliseconds.
pub const POLL_MS: u32 = 2_000;

/// One row of the list, ready to show.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientRow {
    /// The client id.
    pub client_id: String,
    /// Its live connections.
    pub connections: u64,
    /// Its topics, comma separated (empty for none).
    pub topics: String,
    /// Local time of its oldest connection, `HH:MM:SS` (empty if unknown).
    pub since: String,
}

/// `<ul aria-label="Connected clients">`, one `data-testid="client"` row per client with its
/// id, connection count and topics; this tab's own row is marked "you".
#[component]
pub fn ClientsPanel(client_id: RwSignal<Option<String>>) -> impl IntoView {
    let rows = RwSignal::new(Vec::<ClientRow>::new());
    let error = RwSignal::new(None::<String>);

    #[cfg(any(feature = "hydrate", feature = "csr"))]
    poll(rows, error);

    view! {
        <section class="card clients" aria-label="Clients">
            <h2>"Connected clients"</h2>
            <p class="hint">"Refreshed every 2 s."</p>
            <ul class="client-list" aria-label="Connected clients">
                <For
                    each=move || rows.get()
                    // Rows are immutable once drawn, so the key is the whole row.
                    key=ClientRow::clone
                    children=move |row: ClientRow| {
                        let id = row.client_id.clone();
                        let me = move || client_id.with(|own| own.as_deref() == Some(id.as_str()));
                        view! {
                            <li class="client" class:me=me.clone() data-testid="client">
                                <code class="id" data-testid="client-row-id">
                                    {row.client_id}
                                </code>
                                <Show when=me.clone()>
                                    <span class="badge you">"you"</span>
                                </Show>
                                <span class="connections" data-testid="client-connections">
                                    {format!("{} connection(s)", row.connections)}
                                </span>
                                <span class="topics" data-testid="client-topics">
                                    {if row.topics.is_empty() {
                                        "no topics".to_owned()
                                    } else {
                                        format!("topics: {}", row.topics)
                                    }}
                                </span>
                                {(!row.since.is_empty())
                                    .then(|| {
                                        view! { <span class="since">"since " {row.since}</span> }
                                    })}
                            </li>
                        }
                    }
                />
            </ul>
            {move || {
                error
                    .get()
                    .map(|error| {
                        view! {
                            <p class="error" data-testid="clients-error">
                                "Could not load clients: "
                                {error}
                            </p>
                        }
                    })
            }}
        </section>
    }
}

/// Fetches `/clients` now and every [`POLL_MS`]; the timer stops when the panel goes away.
#[cfg(any(feature = "hydrate", feature = "csr"))]
fn poll(rows: RwSignal<Vec<ClientRow>>, error: RwSignal<Option<String>>) {
    use std::{cell::Cell, rc::Rc};

    use send_wrapper::SendWrapper;

    use crate::{api::ClientsResponse, browser};

    // An effect, so that polling starts once the page is hydrated.
    Effect::new(move || {
        // A slow answer must not pile up requests behind it.
        let in_flight = Rc::new(Cell::new(false));
        let refresh = move || {
            if in_flight.replace(true) {
                return;
            }
            let in_flight = Rc::clone(&in_flight);
            leptos::task::spawn_local(async move {
                match browser::get_json::<ClientsResponse>("/clients").await {
                    Ok(answer) => {
                        let mut list: Vec<ClientRow> = answer
                            .clients
                            .into_iter()
                            .map(|c| ClientRow {
                                topics: c.topics.join(", "),
                                since: c
                                    .connected_since
                                    .as_deref()
                                    .map(browser::local_hms)
                                    .unwrap_or_default(),
                                client_id: c.client_id,
                                connections: c.connections,
                            })
                            .collect();
                        list.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                        rows.set(list);
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e)),
                }
                in_flight.set(false);
            });
        };
        refresh();
        let timer = SendWrapper::new(gloo_timers::callback::Interval::new(POLL_MS, refresh));
        on_cleanup(move || drop(timer));
    });
}
