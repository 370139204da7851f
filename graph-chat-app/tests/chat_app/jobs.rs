//! Copies of the app on one PostgreSQL database (`--database`) against one Graph: each
//! person's subscriptions, renewals and reconciles are done by one copy, the one that holds
//! the person's job (`docs/contracts.md#the-chat-app`): Graph holds one set of subscriptions
//! however many copies run, and when the holder stops, another takes over within 15 s and
//! renews.
//!
//! These tests run against the database `GCW_POSTGRES_URL` (or `DATABASE_URL`) names, each in
//! a schema of its own made and dropped by the test, so they run in parallel. Without a URL
//! they print that they were skipped, and fail when `CI` is set. With SQLite (no `--database`)
//! a copy holds every job: the other tests run that way.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::pg::PgSchema;
use crate::common::ChatProcess;
use crate::common::{agent_with_session, sign_in_cookie, sim_config, wait_for, TempDir, PATIENCE};
use graph_chat_app::{App, Config};
use graph_chat_webhook::JwksSource;
use graph_sim::Simulator;
use serde_json::Value;

/// `--renew-every` in these tests: several renewals fit in a test.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The contract: a job a copy that stopped held is taken over within this.
const TAKEOVER: Duration = Duration::from_secs(15);

/// One Graph and copies of the app on one database, each with its own `--data`.
struct Copies {
    runtime: tokio::runtime::Runtime,
    sim: Option<Simulator>,
    apps: Vec<Option<App>>,
    dir: TempDir,
    db: PgSchema,
}

impl Copies {
    fn start(n: usize, db: PgSchema) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime.block_on(Simulator::start(sim_config())).unwrap();
        let dir = TempDir::new("jobs");
        common::create_chat(&common::agent(), &sim, "Project");
        let mut copies = Self {
            runtime,
            sim: Some(sim),
            apps: Vec::new(),
            dir,
            db,
        };
        // Started together: of copies racing on an empty database, one takes each job.
        let configs: Vec<Config> = (0..n).map(|i| copies.config(i)).collect();
        let started = copies.runtime.block_on(futures_util::future::join_all(
            configs.into_iter().map(App::start),
        ));
        copies.apps = started.into_iter().map(|a| Some(a.unwrap())).collect();
        copies
    }

    fn sim(&self) -> &Simulator {
        self.sim.as_ref().unwrap()
    }

    fn user(&self) -> String {
        self.sim().identity().user_id
    }

    fn config(&self, i: usize) -> Config {
        let sim = self.sim();
        let identity = sim.identity();
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: self.dir.path().join(format!("data{i}")),
            resync_every: Duration::from_secs(86_400),
            graph: sim.base_url(),
            tenant_id: identity.tenant_id,
            client_id: identity.app_id.clone(),
            app_id: identity.app_id,
            client_secret: None,
            authority: sim.base_url().trim_end_matches('/').to_owned(),
            jwks: JwksSource::Url(identity.jwks_url),
            public_url: None,
            trust_proxy: false,
            frame_ancestors: None,
            event_retention: graph_chat_app::store::EVENT_RETENTION,
            key_file: None,
            renew_every: Some(RENEW_EVERY),
            database: Some(self.db.url().to_owned()),
        }
    }

    /// The user signs in on every copy at once; each copy's session agent.
    fn sign_in_everywhere(&self) -> Vec<ureq::Agent> {
        let user = self.user();
        let urls: Vec<String> = self
            .apps
            .iter()
            .map(|a| a.as_ref().unwrap().url().to_owned())
            .collect();
        std::thread::scope(|s| {
            let signing: Vec<_> = urls
                .iter()
                .map(|url| {
                    let user = user.clone();
                    s.spawn(move || agent_with_session(&sign_in_cookie(url, &user)))
                })
                .collect();
            signing.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    /// The copies that hold the user's job now.
    fn holders(&self) -> Vec<usize> {
        let user = self.user();
        self.apps
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.as_ref()
                    .and_then(|a| a.person(&user))
                    .is_some_and(|sync| sync.holds_job())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The copy that holds the user's job, once one does (a copy whose first try met a busy
    /// database takes it at its next); never two.
    fn one_holder(&self) -> Vec<usize> {
        within("a copy holds the person's job", TAKEOVER, || {
            let holders = self.holders();
            assert!(holders.len() <= 1, "two copies hold one job: {holders:?}");
            (holders.len() == 1).then_some(holders)
        })
    }

    /// Graph's live subscriptions, as it lists them.
    fn subscriptions(&self) -> Vec<Value> {
        let sim = self.sim();
        let token = common::token_for(sim, &self.user());
        let mut answer = common::agent()
            .get(&format!("{}v1.0/subscriptions", sim.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let body: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        body["value"].as_array().unwrap().clone()
    }

    /// The renewals Graph has served (`PATCH /subscriptions/{id}`).
    fn renewals(&self) -> u64 {
        self.sim()
            .usage()
            .calls
            .iter()
            .filter(|c| c.method == "PATCH" && c.route.contains("/subscriptions/"))
            .map(|c| c.count)
            .sum()
    }

    /// Stops copy `i` (its locks go with its connection).
    fn stop(&mut self, i: usize) {
        if let Some(app) = self.apps[i].take() {
            self.runtime.block_on(app.shutdown());
        }
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        for i in 0..self.apps.len() {
            self.stop(i);
        }
        if let Some(sim) = self.sim.take() {
            self.runtime.block_on(sim.shutdown());
        }
    }
}

/// Waits, at most `within`, for `probe` to answer.
fn within<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One set: the person's two subscriptions (their messages, their chats), both delivering to
/// the copy `app_url` names.
fn one_set_delivering_to(subscriptions: &[Value], app_url: &str) -> bool {
    let notification_url = format!("{app_url}notifications");
    subscriptions.len() == 2
        && subscriptions
            .iter()
            .all(|s| s["notificationUrl"] == notification_url.as_str())
}

#[test]
fn three_copies_on_one_database_keep_one_set_of_subscriptions() {
    let Some(db) = PgSchema::new("three") else {
        return;
    };
    let copies = Copies::start(3, db);
    let agents = copies.sign_in_everywhere();
    // Each copy serves the person (their chats on the page) ...
    for (agent, app) in agents.iter().zip(&copies.apps) {
        let url = app.as_ref().unwrap().url();
        wait_for("the copy lists the chat", || {
            (!common::chats(agent, url).is_empty()).then_some(())
        });
    }
    // ... and one of them does their subscriptions.
    let holders = copies.one_holder();
    let holder_url = copies.apps[holders[0]].as_ref().unwrap().url().to_owned();
    within("one set of subscriptions, the holder's", PATIENCE, || {
        Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &holder_url))
    });
    // Through several renewals (by the holder), still one set and one holder.
    let renewed = copies.renewals();
    within(
        "two renewals of each subscription",
        RENEW_EVERY * 2 + PATIENCE,
        || (copies.renewals() >= renewed + 4).then_some(()),
    );
    assert_eq!(copies.holders(), holders);
    let subscriptions = copies.subscriptions();
    assert!(
        one_set_delivering_to(&subscriptions, &holder_url),
        "still one set: {subscriptions:?}"
    );
}

#[test]
fn when_the_holder_stops_another_copy_takes_the_job_within_15_s_and_renews() {
    let Some(db) = PgSchema::new("takeover") else {
        return;
    };
    let mut copies = Copies::start(2, db);
    copies.sign_in_everywhere();
    let holders = copies.one_holder();
    let (gone, other) = (holders[0], 1 - holders[0]);
    let other_url = copies.apps[other].as_ref().unwrap().url().to_owned();
    copies.stop(gone);
    within("the other copy takes the job", TAKEOVER, || {
        (copies.holders() == [other]).then_some(())
    });
    // The stopped copy's subscriptions delivered to it: the new holder replaces them with its
    // own (one set, never two), then renews them.
    let subscriptions = within(
        "one set, delivering to the new holder",
        TAKEOVER + PATIENCE,
        || Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &other_url)),
    );
    let renewed = copies.renewals();
    within(
        "a renewal by the new holder",
        RENEW_EVERY + PATIENCE,
        || (copies.renewals() > renewed).then_some(()),
    );
    let after = copies.subscriptions();
    let ids = |s: &[Value]| {
        let mut ids: Vec<String> = s.iter().map(|s| s["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&subscriptions), "renewed, not made again");
    assert!(one_set_delivering_to(&after, &other_url), "{after:?}");
}

#[test]
fn a_copy_started_after_the_holder_leaves_the_subscriptions_to_it() {
    let Some(db) = PgSchema::new("later") else {
        return;
    };
    let mut copies = Copies::start(1, db);
    copies.sign_in_everywhere();
    assert_eq!(copies.one_holder(), [0]);
    let first_url = copies.apps[0].as_ref().unwrap().url().to_owned();
    within("the first copy's subscriptions", PATIENCE, || {
        Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &first_url))
    });
    // A second copy on the same database: the person signs in there too.
    let config = copies.config(1);
    let second = copies.runtime.block_on(App::start(config)).unwrap();
    let second_url = second.url().to_owned();
    copies.apps.push(Some(second));
    agent_with_session(&sign_in_cookie(&second_url, &copies.user()));
    assert_eq!(copies.holders(), [0], "the first copy keeps the job");
    let after = copies.subscriptions();
    assert!(
        one_set_delivering_to(&after, &first_url),
        "no second set: {after:?}"
    );
}

#[test]
fn a_chat_process_killed_with_kill_9_hands_its_jobs_to_another_within_15_s() {
    let Some(db) = PgSchema::new("kill9") else {
        return;
    };
    // The Graph (in this process) and the copies' database; no App in this process.
    let copies = Copies::start(0, db);
    let sim = copies.sim();
    let user = copies.user();
    let renew = RENEW_EVERY.as_secs().to_string();
    let mut processes: Vec<ChatProcess> = (0..2)
        .map(|i| {
            ChatProcess::start(
                sim,
                &copies.dir.path().join(format!("p{i}")),
                &["--renew-every", &renew, "--database", copies.db.url()],
            )
        })
        .collect();
    for p in &processes {
        agent_with_session(&sign_in_cookie(&p.app, &user));
    }
    // Graph's list says which copy holds the job: the one its subscriptions deliver to.
    let holder = within("one set, of one of the copies", TAKEOVER + PATIENCE, || {
        let subscriptions = copies.subscriptions();
        processes
            .iter()
            .position(|p| one_set_delivering_to(&subscriptions, &p.app))
    });
    let other = 1 - holder;
    processes[holder].kill_9();
    let other_url = processes[other].app.clone();
    within(
        "one set, delivering to the surviving copy",
        TAKEOVER + PATIENCE,
        || Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &other_url)),
    );
    let renewed = copies.renewals();
    within(
        "a renewal by the surviving copy",
        RENEW_EVERY + PATIENCE,
        || (copies.renewals() > renewed).then_some(()),
    );
    let after = copies.subscriptions();
    assert!(one_set_delivering_to(&after, &other_url), "{after:?}");
}

#[test]
fn a_lifecycle_event_that_reaches_a_copy_without_the_job_is_handed_to_the_holder() {
    let Some(db) = PgSchema::new("forward") else {
        return;
    };
    let copies = Copies::start(2, db);
    copies.sign_in_everywhere();
    let holders = copies.one_holder();
    let other = 1 - holders[0];
    let reauthorizations = || -> u64 {
        copies
            .sim()
            .usage()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && c.route.ends_with("/reauthorize"))
            .map(|c| c.count)
            .sum()
    };
    assert_eq!(reauthorizations(), 0);
    // Graph's `reauthorizationRequired` for one of the person's subscriptions, received by the
    // copy that does not hold the job (any copy may receive it through the public URL).
    let holder_url = copies.apps[holders[0]].as_ref().unwrap().url().to_owned();
    let subscriptions = within("the holder's subscriptions", PATIENCE, || {
        Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &holder_url))
    });
    let subscription = subscriptions[0]["id"].as_str().unwrap().to_owned();
    let person = copies.apps[other]
        .as_ref()
        .unwrap()
        .person(&copies.user())
        .unwrap();
    person.on_lifecycle(&subscription, "reauthorizationRequired");
    within("the holder reauthorizes", PATIENCE, || {
        (reauthorizations() == 1).then_some(())
    });
}

/// A TCP proxy on loopback to the test database, for one copy: `cut` closes every connection
/// through it and refuses new ones, as a network that failed.
struct Link {
    url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Link {
    fn open(runtime: &tokio::runtime::Runtime, database: &str) -> Self {
        let mut url = url::Url::parse(database).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        let (cut, is_cut) = tokio::sync::watch::channel(false);
        runtime.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *is_cut.borrow() {
                    continue; // Dropped: refused.
                }
                let target = target.clone();
                let mut is_cut = is_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = is_cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Self {
            url: url.to_string(),
            cut,
        }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }
}

#[test]
fn a_copy_that_loses_the_database_stops_its_jobs_and_another_takes_them() {
    let Some(db) = PgSchema::new("cut") else {
        return;
    };
    let mut copies = Copies::start(0, db);
    let links: Vec<Link> = (0..2)
        .map(|_| Link::open(&copies.runtime, copies.db.url()))
        .collect();
    for (i, link) in links.iter().enumerate() {
        let config = Config {
            database: Some(link.url.clone()),
            ..copies.config(i)
        };
        let app = copies.runtime.block_on(App::start(config)).unwrap();
        copies.apps.push(Some(app));
    }
    copies.sign_in_everywhere();
    let holder = copies.one_holder()[0];
    let other = 1 - holder;
    let other_url = copies.apps[other].as_ref().unwrap().url().to_owned();
    // The holder's network to the database fails: it stops at once (it can no longer know
    // that it holds the lock), and the other copy takes the job; never both at a time.
    links[holder].cut();
    within("the other copy takes the job", TAKEOVER, || {
        let holders = copies.holders();
        assert!(holders.len() <= 1, "two copies hold one job: {holders:?}");
        (holders == [other]).then_some(())
    });
    within(
        "one set, delivering to the other copy",
        TAKEOVER + PATIENCE,
        || Some(copies.subscriptions()).filter(|s| one_set_delivering_to(s, &other_url)),
    );
    assert_eq!(copies.holders(), [other], "the cut copy does not act");
}
