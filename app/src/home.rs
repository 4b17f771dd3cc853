//! The page at `/`: the panels in a responsive grid, sharing one [`ClientStream`].

use leptos::prelude::*;

use crate::{
    clients::ClientsPanel, connection::ConnectionPanel, messages::MessageList, push::PushForm,
    stream::ClientStream, task::TaskPanel,
};

/// The one page (DESIGN §4).
#[component]
pub fn HomePage() -> impl IntoView {
    let stream = ClientStream::new();

    view! {
        <header class="masthead">
            <h1>"Herald"</h1>
            <p class="tagline">"Server push over Server-Sent Events"</p>
        </header>
        <main class="panels">
            <ConnectionPanel stream/>
            <PushForm stream/>
            <MessageList stream/>
            <TaskPanel/>
            <ClientsPanel client_id=stream.client_id/>
        </main>
    }
}
