use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn a_push_reaches_only_its_target_among_three_clients() {
    let server = TestServer::start().await;
    let mut first = server.subscribe("client_id=first").await;
    let mut second = server.subscribe("client_id=second").await;
    let mut third = server.subscribe("client_id=third").await;

    let (unicast_id, delivered) =
        server.push(json!({"client_id": "second", "message": "for second"})).await;
    assert_eq!(delivered, 1);
    let (marker_id, delivered) =
        server.push(json!({"broadcast": true, "message": "everyone"})).await;
    assert_eq!(delivered, 3);

    let event = second.next().await;
    assert_eq!((event.id.as_str(), event.data.as_str()), (unicast_id.as_str(), "for second"));
    assert_eq!(second.next_data().await, "everyone");
    // Each connection sees messages in order, so if the unicast had leaked to the
    // others it would come before the broadcast.
    for other in [&mut first, &mut third] {
        let event = other.next().await;
        assert_eq!((event.id.as_str(), event.data.as_str()), (marker_id.as_str(), "everyone"));
    }
}

#[tokio::test]
async fn event_ids_increase_and_name_the_target_kind() {
    let server = TestServer::start().await;
    let (client, _) = server.push(json!({"client_id": "a", "message": 1})).await;
    let (topic, _) = server.push(json!({"topic": "t", "message": 2})).await;
    let (all, _) = server.push(json!({"broadcast": true, "message": 3})).await;
    let seq = |id: &str| id.split('-').nth(1).unwrap().parse::<u64>().unwrap();
    assert!(seq(&client) < seq(&topic) && seq(&topic) < seq(&all));
    assert!(client.ends_with("-c") && topic.ends_with("-t") && all.ends_with("-b"));
    for id in [&client, &topic, &all] {
        assert!(id.len() <= 64 && id.is_ascii() && !id.contains(':'));
    }
}

#[tokio::test]
async fn topics_reach_their_members_only() {
    let server = TestServer::start().await;
    let mut news = server.subscribe("client_id=a&topic=news").await;
    let mut both = server.subscribe("client_id=b&topic=news&topic=sport").await;
    let mut none = server.subscribe("client_id=c").await;

    assert_eq!(server.push(json!({"topic": "sport", "message": "goal"})).await.1, 1);
    assert_eq!(server.push(json!({"topic": "news", "message": "headline"})).await.1, 2);
    assert_eq!(server.push(json!({"topic": "weather", "message": "rain"})).await.1, 0);
    server.push(json!({"broadcast": true, "message": "end"})).await;

    assert_eq!(news.next_data().await, "headline");
    assert_eq!(both.next_data().await, "goal");
    assert_eq!(both.next_data().await, "headline");
    assert_eq!(none.next_data().await, "end");
    assert_eq!(news.next_data().await, "end");
}

#[tokio::test]
async fn every_tab_of_a_client_receives_its_messages() {
    let server = TestServer::start().await;
    let mut tabs = vec![
        server.subscribe("client_id=tabby").await,
        server.subscribe("client_id=tabby").await,
        server.subscribe("client_id=tabby").await,
    ];
    let (id, delivered) = server.push(json!({"client_id": "tabby", "message": "hello tabs"})).await;
    assert_eq!(delivered, 3);
    for tab in &mut tabs {
        let event = tab.next().await;
        assert_eq!((event.id, event.data), (id.clone(), "hello tabs".to_owned()));
    }
}

#[tokio::test]
async fn a_push_to_nobody_is_accepted_with_zero_deliveries() {
    let server = TestServer::start().await;
    let (id, delivered) = server.push(json!({"client_id": "absent", "message": "later"})).await;
    assert_eq!(delivered, 0);
    assert!(!id.is_empty());
}

#[tokio::test]
async fn event_names_and_json_messages_arrive_as_sent() {
    let server = TestServer::start().await;
    let mut client = server.subscribe("client_id=a").await;
    server.push(json!({"client_id": "a", "event": "order.shipped", "message": {"order": 7, "items": ["x", "y"]}})).await;
    server.push(json!({"client_id": "a", "message": "two\nlines\r\nand\rmore"})).await;
    let event = client.next().await;
    assert_eq!(event.event, "order.shipped");
    assert_eq!(event.data, r#"{"order":7,"items":["x","y"]}"#);
    let event = client.next().await;
    assert_eq!(event.event, "message");
    assert_eq!(event.data, "two\nlines\nand\nmore");
}

#[tokio::test]
async fn a_form_body_works_like_json() {
    let server = TestServer::start().await;
    let mut client = server.subscribe("client_id=a&topic=news").await;
    let form = |fields: &[(&str, &str)]| server.http.post(server.url("/push")).form(fields).send();
    let response =
        form(&[("client_id", "a"), ("message", "from a form"), ("event", "note")]).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = form(&[("topic", "news"), ("message", "topic form")]).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = form(&[("broadcast", "true"), ("message", "all form")]).await.unwrap();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["delivered"], 1);
    let event = client.next().await;
    assert_eq!((event.event.as_str(), event.data.as_str()), ("note", "from a form"));
    assert_eq!(client.next_data().await, "topic form");
    assert_eq!(client.next_data().await, "all form");
}

#[tokio::test]
async fn what_html_forms_send_is_understood() {
    let server = TestServer::start().await;
    let mut client = server.subscribe("client_id=a").await;
    let form = |body: &'static str| {
        server
            .http
            .post(server.url("/push"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for (body, expected) in [
        // A target picker sends its blank inputs too.
        ("client_id=&topic=&broadcast=true&message=blank+fields&event=", "blank fields"),
        // A checked checkbox sends "on"; Rails puts a hidden default before it.
        ("broadcast=on&message=checkbox", "checkbox"),
        ("broadcast=0&broadcast=1&message=hidden+default", "hidden default"),
        ("client_id=a&client_id=a&message=repeated+alike", "repeated alike"),
    ] {
        let response = form(body).await.unwrap();
        assert_eq!(response.status(), 200, "{body}: {}", response.text().await.unwrap());
        assert_eq!(client.next_data().await, expected);
    }
    for (body, says) in [
        ("client_id=a&client_id=b&message=which", "given twice"),
        ("client_id=&topic=&message=nobody", "names 0"),
        ("broadcast=off&message=unchecked", "names 0"),
        ("broadcast=maybe&message=x", "broadcast must be"),
        ("client_id=a&message=", "message is required"),
    ] {
        let response = form(body).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains(says), "{body}: {error}");
    }
}
