//! Primer's own quickstart corpus: a seeded generator of English-like documents.
//!
//! A small grammar writes documents of 3 to 8 sentences, one sentence per line, documents
//! separated by one blank line. It has subject-verb agreement in present and past tense,
//! negation ("does not", "never"), named people, cities and organisations, one topic per
//! document (so the next sentence is predictable from the previous ones), pronouns that refer
//! back to the person the document introduced, sentiment sentences and assistant-style requests.
//! The same grammar yields labelled examples (sentiment; intent with BIO slot tags), so a model
//! pretrained on the corpus has already seen their words. Everything is deterministic by seed.

use crate::error::Result;
use std::path::Path;

/// SplitMix64: a tiny, fast generator, plenty for text generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` for `0 < n < 2^32` (multiply-shift; the bias is negligible here).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A verb's base, third-person singular present and past forms.
type Verb = [&'static str; 3];
/// A noun's singular and plural.
type Noun = [&'static str; 2];

#[rustfmt::skip]
const MEN: &[&str] = &["James", "Omar", "Lucas", "Daniel", "Hiro", "Mateo", "Samuel", "Felix", "Arjun",
    "Leo", "Victor", "Jonas", "Tomas", "Kwame", "Ethan", "Marco", "Pavel", "Noah", "Ivan", "Diego",
    "Oscar", "Rafael", "Henry", "Yusuf"];
#[rustfmt::skip]
const WOMEN: &[&str] = &["Maria", "Emma", "Aisha", "Sofia", "Yuki", "Clara", "Nadia", "Ingrid", "Priya",
    "Lena", "Chloe", "Amara", "Olivia", "Mei", "Hannah", "Rosa", "Elena", "Fatima", "Julia", "Zara",
    "Ana", "Grace", "Keiko", "Lucia"];
#[rustfmt::skip]
const SURNAMES: &[&str] = &["Okafor", "Tanaka", "Novak", "Silva", "Berg", "Kim", "Haddad", "Moreau",
    "Rossi", "Schmidt", "Patel", "Nakamura", "Costa", "Mendes", "Larsen", "Walsh", "Adeyemi",
    "Fischer", "Duarte", "Reyes", "Chen", "Khan", "Murphy", "Jensen", "Quinn", "Lopez"];
#[rustfmt::skip]
const CITIES: &[&str] = &["Paris", "Lyon", "Berlin", "Madrid", "Lisbon", "Rome", "Oslo", "Vienna",
    "Prague", "Dublin", "Cairo", "Nairobi", "Lagos", "Tokyo", "Osaka", "Seoul", "Mumbai", "Delhi",
    "Sydney", "Toronto", "Chicago", "Boston", "Denver", "Lima", "Bogota", "Helsinki", "Warsaw",
    "Athens", "Istanbul", "Hanoi", "Manila", "New York", "San Diego", "Buenos Aires", "Cape Town",
    "Mexico City"];
#[rustfmt::skip]
const ORGS: &[&str] = &["Northwind Bank", "Blue Harbor Studios", "Acme Logistics", "Greenfield Labs",
    "Silverline Media", "Redwood Insurance", "Orion Systems", "Maple Foods", "Summit Health",
    "Brightpath School", "Ironbridge Motors", "Lakeside Hospital", "Copperleaf Design",
    "Starling Airlines", "Pinecrest Hotels", "Quantum Works", "Tidewater Energy", "Falcon Robotics",
    "Cedar Books", "Harborview Bakery", "Nimbus Cloud", "Granite Builders", "Sunrise Pharmacy",
    "Atlas Shipping", "Willow Gardens", "Vertex Software", "Crescent Theatre", "Meridian Trust"];
#[rustfmt::skip]
const RESTAURANTS: &[&str] = &["Golden Spoon", "Luigi's", "Blue Lotus", "Casa Verde", "Olive Tree",
    "Red Lantern", "Little Saigon", "Copper Pot", "Saffron House", "Harbor Grill", "Green Fig",
    "Maple Table", "Bella Notte", "Tokyo Garden", "El Sol", "Rusty Anchor"];
#[rustfmt::skip]
const TEAMS: &[&str] = &["Riverside Rovers", "Northfield United", "Harbor Hawks", "Valley Wolves",
    "Eastside Eagles", "Lakeview Lions", "Mountain Bears", "Coastal Sharks", "Redhill Rangers",
    "Westbrook Wanderers", "Stone Bridge City", "Oakdale Athletic"];
#[rustfmt::skip]
const BANDS: &[&str] = &["Night Owls", "Paper Lanterns", "Velvet Sky", "Silver Coast", "Neon Harbor",
    "Midnight Trains", "Wild Orchids", "Glass Rivers", "Echo Valley", "Static Hearts"];
#[rustfmt::skip]
const SONGS: &[&str] = &["Blue Morning", "Summer Rain", "Golden Hour", "Paper Moon", "City Lights",
    "Slow River", "Northern Star", "Open Road", "Falling Leaves", "Second Chance"];
const GENRES: &[&str] = &[
    "jazz",
    "rock",
    "folk",
    "blues",
    "classical",
    "pop",
    "reggae",
    "soul",
];
const CONDITIONS: &[&str] = &[
    "sunny", "rainy", "windy", "cold", "warm", "foggy", "snowy", "hot",
];
#[rustfmt::skip]
const FUTURE: &[&str] = &["today", "tonight", "tomorrow", "tomorrow morning", "tomorrow evening",
    "this weekend", "next week", "next Monday", "this Friday", "next Saturday"];
#[rustfmt::skip]
const PAST: &[&str] = &["yesterday", "last night", "last weekend", "last Sunday", "this morning",
    "on Saturday"];
const TIMES: &[&str] = &[
    "noon",
    "nine o'clock",
    "ten thirty",
    "half past two",
    "four fifteen",
];
const PARTY: &[&str] = &[
    "two", "three", "four", "five", "six", "eight", "ten", "twelve",
];

#[rustfmt::skip]
const POS_ADJ: &[&str] = &["great", "wonderful", "excellent", "lovely", "pleasant", "fantastic",
    "amazing", "brilliant", "superb", "delightful"];
#[rustfmt::skip]
const NEG_ADJ: &[&str] = &["terrible", "awful", "boring", "disappointing", "horrible", "dreadful",
    "poor", "unpleasant", "dull", "miserable"];
#[rustfmt::skip]
const POS_VERBS: &[Verb] = &[["love", "loves", "loved"], ["enjoy", "enjoys", "enjoyed"],
    ["like", "likes", "liked"], ["adore", "adores", "adored"], ["admire", "admires", "admired"]];
#[rustfmt::skip]
const NEG_VERBS: &[Verb] = &[["hate", "hates", "hated"], ["dislike", "dislikes", "disliked"],
    ["detest", "detests", "detested"], ["despise", "despises", "despised"]];
const INTENSIFIERS: &[&str] = &["really", "very", "truly", "quite"];
const FREQUENCY: &[&str] = &["always", "often", "usually", "sometimes"];
const MANNER: &[&str] = &[
    "carefully",
    "quickly",
    "slowly",
    "happily",
    "quietly",
    "patiently",
];
const QUANTITY: &[&str] = &["two", "three", "several", "many", "some"];
#[rustfmt::skip]
const WHEN_PRESENT: &[&str] = &["every morning", "every day", "on weekends", "in the evening",
    "twice a week"];
const WHEN_PAST: &[&str] = &["yesterday", "last week", "last night", "two days ago"];
const DO: Verb = ["do", "does", "did"];
const LIVE: Verb = ["live", "lives", "lived"];
const WORK: Verb = ["work", "works", "worked"];
const THINK: Verb = ["think", "thinks", "thought"];

/// One topic: its vocabulary and the kind of request an assistant would get about it.
struct Topic {
    roles: &'static [Noun],
    nouns: &'static [Noun],
    verbs: &'static [Verb],
    adjs: &'static [&'static str],
    places: &'static [&'static str],
    intent: &'static str,
    /// Request templates: words, `{slot}` placeholders (see [`fill_slot`]), final punctuation.
    requests: &'static [&'static str],
}

#[rustfmt::skip]
const TOPICS: &[Topic] = &[
    Topic { // food
        roles: &[["chef", "chefs"], ["baker", "bakers"], ["waiter", "waiters"], ["cook", "cooks"], ["grocer", "grocers"]],
        nouns: &[["pie", "pies"], ["salad", "salads"], ["sandwich", "sandwiches"], ["cake", "cakes"], ["pizza", "pizzas"],
            ["burger", "burgers"], ["omelette", "omelettes"], ["apple", "apples"], ["tomato", "tomatoes"],
            ["dumpling", "dumplings"], ["cookie", "cookies"], ["peach", "peaches"], ["lemon", "lemons"]],
        verbs: &[["cook", "cooks", "cooked"], ["bake", "bakes", "baked"], ["eat", "eats", "ate"], ["order", "orders", "ordered"],
            ["share", "shares", "shared"], ["taste", "tastes", "tasted"], ["buy", "buys", "bought"], ["prepare", "prepares", "prepared"]],
        adjs: &["fresh", "spicy", "sweet", "warm", "homemade", "salty", "crispy", "large"],
        places: &["in the kitchen", "at the market", "at a small cafe", "at home"],
        intent: "book_restaurant",
        requests: &["can you book a table at {restaurant} in {city} for {party_size} people {date}?", "please reserve a table for {party_size} at {restaurant} {date}.",
            "I would like a table for {party_size} people in {city} {date}."],
    },
    Topic { // travel
        roles: &[["traveller", "travellers"], ["pilot", "pilots"], ["guide", "guides"], ["tourist", "tourists"]],
        nouns: &[["ticket", "tickets"], ["suitcase", "suitcases"], ["map", "maps"], ["passport", "passports"],
            ["guidebook", "guidebooks"], ["postcard", "postcards"], ["souvenir", "souvenirs"], ["backpack", "backpacks"], ["camera", "cameras"]],
        verbs: &[["pack", "packs", "packed"], ["carry", "carries", "carried"], ["lose", "loses", "lost"], ["find", "finds", "found"],
            ["forget", "forgets", "forgot"], ["check", "checks", "checked"], ["buy", "buys", "bought"]],
        adjs: &["old", "heavy", "new", "small", "blue", "spare", "paper"],
        places: &["at the airport", "on the train", "at the station", "in the hotel lobby"],
        intent: "book_flight",
        requests: &["book a flight from {from_city} to {to_city} {date}.", "can you find me a flight to {to_city} {date}?",
            "I need {party_size} tickets from {from_city} to {to_city}."],
    },
    Topic { // weather
        roles: &[["forecaster", "forecasters"], ["sailor", "sailors"], ["meteorologist", "meteorologists"], ["gardener", "gardeners"]],
        nouns: &[["storm", "storms"], ["cloud", "clouds"], ["rainbow", "rainbows"], ["forecast", "forecasts"], ["sunrise", "sunrises"],
            ["sunset", "sunsets"], ["thunderstorm", "thunderstorms"], ["snowfall", "snowfalls"], ["breeze", "breezes"]],
        verbs: &[["watch", "watches", "watched"], ["photograph", "photographs", "photographed"], ["expect", "expects", "expected"],
            ["predict", "predicts", "predicted"], ["describe", "describes", "described"], ["notice", "notices", "noticed"]],
        adjs: &["dark", "heavy", "bright", "sudden", "gentle", "grey", "early"],
        places: &["from the window", "on the hill", "by the sea", "on the roof"],
        intent: "get_weather",
        requests: &["what is the weather like in {city} {date}?", "will it be {condition} in {city} {date}?",
            "tell me the forecast for {city} {date}."],
    },
    Topic { // sports
        roles: &[["player", "players"], ["coach", "coaches"], ["runner", "runners"], ["referee", "referees"], ["swimmer", "swimmers"]],
        nouns: &[["match", "matches"], ["game", "games"], ["race", "races"], ["tournament", "tournaments"], ["final", "finals"],
            ["championship", "championships"], ["relay", "relays"], ["marathon", "marathons"]],
        verbs: &[["win", "wins", "won"], ["lose", "loses", "lost"], ["watch", "watches", "watched"], ["follow", "follows", "followed"],
            ["miss", "misses", "missed"], ["remember", "remembers", "remembered"], ["enter", "enters", "entered"]],
        adjs: &["long", "important", "close", "local", "national", "annual", "difficult"],
        places: &["at the stadium", "in the park", "on the field", "at the gym"],
        intent: "get_score",
        requests: &["did {team} win {past_date}?", "what was the score of the {team} game {past_date}?",
            "who won the match between {team} and {team}?"],
    },
    Topic { // music
        roles: &[["singer", "singers"], ["drummer", "drummers"], ["pianist", "pianists"], ["guitarist", "guitarists"], ["violinist", "violinists"]],
        nouns: &[["song", "songs"], ["album", "albums"], ["melody", "melodies"], ["tune", "tunes"], ["symphony", "symphonies"],
            ["ballad", "ballads"], ["concert", "concerts"], ["chorus", "choruses"]],
        verbs: &[["play", "plays", "played"], ["write", "writes", "wrote"], ["hear", "hears", "heard"], ["practise", "practises", "practised"],
            ["perform", "performs", "performed"], ["sing", "sings", "sang"]],
        adjs: &["quiet", "loud", "slow", "new", "old", "short", "gentle", "famous"],
        places: &["in the studio", "on stage", "at the club", "in the garage"],
        intent: "play_music",
        requests: &["play {song} by {artist}.", "can you play some {genre} music?",
            "put on the latest album by {artist}."],
    },
    Topic { // work
        roles: &[["manager", "managers"], ["engineer", "engineers"], ["clerk", "clerks"], ["designer", "designers"], ["accountant", "accountants"]],
        nouns: &[["report", "reports"], ["email", "emails"], ["contract", "contracts"], ["budget", "budgets"], ["presentation", "presentations"],
            ["project", "projects"], ["invoice", "invoices"], ["schedule", "schedules"], ["proposal", "proposals"]],
        verbs: &[["write", "writes", "wrote"], ["review", "reviews", "reviewed"], ["send", "sends", "sent"], ["prepare", "prepares", "prepared"],
            ["finish", "finishes", "finished"], ["sign", "signs", "signed"], ["approve", "approves", "approved"]],
        adjs: &["weekly", "monthly", "urgent", "long", "quarterly", "detailed", "draft"],
        places: &["at the office", "in the meeting room", "from home", "at the head office"],
        intent: "schedule_meeting",
        requests: &["schedule a meeting with {person} {date} at {time}.", "can you set up a call with {person} from {org} {date}?",
            "book a meeting room at {org} for {party_size} people at {time}."],
    },
    Topic { // animals
        roles: &[["farmer", "farmers"], ["vet", "vets"], ["zookeeper", "zookeepers"], ["shepherd", "shepherds"]],
        nouns: &[["dog", "dogs"], ["cat", "cats"], ["horse", "horses"], ["rabbit", "rabbits"], ["parrot", "parrots"], ["goat", "goats"],
            ["puppy", "puppies"], ["kitten", "kittens"], ["pony", "ponies"], ["lamb", "lambs"], ["duck", "ducks"]],
        verbs: &[["feed", "feeds", "fed"], ["wash", "washes", "washed"], ["brush", "brushes", "brushed"], ["train", "trains", "trained"],
            ["adopt", "adopts", "adopted"], ["walk", "walks", "walked"], ["photograph", "photographs", "photographed"]],
        adjs: &["small", "young", "old", "playful", "sleepy", "hungry", "brown", "white"],
        places: &["on the farm", "at the zoo", "in the barn", "in the yard"],
        intent: "find_vet",
        requests: &["find a vet for my {pet} in {city}.", "is there an animal clinic in {city} that is open {date}?",
            "I need a vet for my sick {pet} {date}."],
    },
];

/// A sentence under construction: phrases, each with its slot name ("" outside slots).
struct Sent {
    parts: Vec<(&'static str, &'static str)>,
    end: char,
}

impl Sent {
    fn new() -> Self {
        Sent {
            parts: Vec::with_capacity(32),
            end: '.',
        }
    }
    fn clear(&mut self) {
        self.parts.clear();
        self.end = '.';
    }
    fn w(&mut self, text: &'static str) {
        self.parts.push((text, ""));
    }
    /// Appends several words; empty ones are skipped, so optional words can be "".
    fn ws(&mut self, words: &[&'static str]) {
        let words = words.iter().filter(|w| !w.is_empty());
        self.parts.extend(words.map(|w| (*w, "")));
    }
    fn slot(&mut self, name: &'static str, text: &'static str) {
        self.parts.push((text, name));
    }
    /// Appends the sentence, capitalised and punctuated, without a newline.
    fn render(&self, out: &mut String) {
        for (i, (text, _)) in self.parts.iter().enumerate() {
            if i == 0 {
                let mut chars = text.chars();
                out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                out.push_str(chars.as_str());
                continue;
            }
            if *text != "," {
                out.push(' ');
            }
            out.push_str(text);
        }
        out.push(self.end);
    }
    fn line(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }
    /// One BIO tag per whitespace token; a phrase continuing its predecessor's slot gets I-.
    fn tags(&self) -> Vec<String> {
        let mut tags = Vec::new();
        let mut prev = "";
        for (text, slot) in &self.parts {
            for (j, _) in text.split_whitespace().enumerate() {
                tags.push(match *slot {
                    "" => "O".to_string(),
                    s if j == 0 && s != prev => format!("B-{s}"),
                    s => format!("I-{s}"),
                });
            }
            prev = slot;
        }
        tags
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Tense {
    Present,
    Past,
}

/// Grammatical person and number of a subject: "I"; he, she, it or a singular noun; or plural.
#[derive(Clone, Copy, PartialEq)]
enum Agr {
    First,
    Third,
    Plural,
}

/// What one document is about: its topic, protagonist, place, organisation and tense.
struct Ctx {
    topic: &'static Topic,
    name: &'static str,
    surname: &'static str,
    female: bool,
    city: &'static str,
    org: &'static str,
    tense: Tense,
}

impl Ctx {
    fn random(rng: &mut Rng) -> Ctx {
        let female = rng.chance(50);
        Ctx {
            topic: &TOPICS[rng.below(TOPICS.len())],
            name: rng.pick(if female { WOMEN } else { MEN }),
            surname: rng.pick(SURNAMES),
            female,
            city: rng.pick(CITIES),
            org: rng.pick(ORGS),
            tense: rng.pick(&[Tense::Present, Tense::Past]),
        }
    }
    fn he(&self) -> (&'static str, &'static str) {
        if self.female {
            ("she", "her")
        } else {
            ("he", "his")
        }
    }
}

fn finite(v: Verb, agr: Agr, tense: Tense) -> &'static str {
    match (tense, agr) {
        (Tense::Past, _) => v[2],
        (Tense::Present, Agr::Third) => v[1],
        (Tense::Present, _) => v[0],
    }
}

fn be(agr: Agr, tense: Tense) -> &'static str {
    match (tense, agr) {
        (Tense::Present, Agr::First) => "am",
        (Tense::Present, Agr::Third) => "is",
        (Tense::Present, Agr::Plural) => "are",
        (Tense::Past, Agr::Plural) => "were",
        (Tense::Past, _) => "was",
    }
}

fn article(next_word: &str) -> &'static str {
    match next_word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

/// Who a statement is about.
#[derive(Clone, Copy)]
enum Who {
    Hero,
    HeroName,
    I,
    We,
    You,
    Friends,
    Roles,
    Role,
}

/// A subject already written: its agreement, possessive and the pronoun that refers back to it.
struct Subj {
    agr: Agr,
    poss: &'static str,
    pron: Option<&'static str>,
}

fn subject(rng: &mut Rng, c: &Ctx, who: Who, s: &mut Sent) -> Subj {
    let (he, his) = c.he();
    let (text, agr, poss, pron) = match who {
        Who::Hero => (he, Agr::Third, his, Some(he)),
        Who::HeroName => (c.name, Agr::Third, his, Some(he)),
        Who::I => ("I", Agr::First, "my", Some("I")),
        Who::We => ("we", Agr::Plural, "our", Some("we")),
        Who::You => ("you", Agr::Plural, "your", Some("you")),
        Who::Friends => {
            let who = rng.pick(&["my friends", "our neighbours", "my parents", "the children"]);
            (who, Agr::Plural, "their", Some("they"))
        }
        Who::Roles => {
            s.ws(&["the", rng.pick(c.topic.roles)[1]]);
            s.ws(&if rng.chance(40) {
                ["in", c.city]
            } else {
                [""; 2]
            });
            ("", Agr::Plural, "their", Some("they"))
        }
        Who::Role => {
            s.w("the");
            (rng.pick(c.topic.roles)[0], Agr::Third, "the", None)
        }
    };
    s.ws(&[text]);
    Subj { agr, poss, pron }
}

/// Writes a finite verb group, negated with "do not" or "never" when `negate`.
fn verb_group(rng: &mut Rng, v: Verb, agr: Agr, tense: Tense, negate: bool, s: &mut Sent) {
    if !negate {
        s.w(finite(v, agr, tense));
    } else if rng.chance(35) {
        s.ws(&["never", finite(v, agr, tense)]);
    } else {
        s.ws(&[finite(DO, agr, tense), "not", v[0]]);
    }
}

fn object(rng: &mut Rng, c: &Ctx, poss: &'static str, s: &mut Sent) {
    let [sg, pl] = rng.pick(c.topic.nouns);
    let adj = rng.chance(50).then(|| rng.pick(c.topic.adjs));
    let (det, noun) = match rng.below(5) {
        0 => ("the", sg),
        1 => (article(adj.unwrap_or(sg)), sg),
        2 => ("", pl),
        3 => (poss, if rng.chance(50) { sg } else { pl }),
        _ => (rng.pick(QUANTITY), pl),
    };
    s.ws(&[det, adj.unwrap_or(""), noun]);
}

fn predicate(rng: &mut Rng, c: &Ctx, subj: &Subj, negate: bool, s: &mut Sent) {
    if !negate && c.tense == Tense::Present && rng.chance(30) {
        s.w(rng.pick(FREQUENCY));
    }
    let verb = rng.pick(c.topic.verbs);
    verb_group(rng, verb, subj.agr, c.tense, negate, s);
    object(rng, c, subj.poss, s);
    if rng.chance(15) {
        s.w(rng.pick(MANNER));
    }
    match rng.below(4) {
        0 => s.w(rng.pick(c.topic.places)),
        1 => s.ws(&["in", c.city]),
        _ => {}
    }
    // "never ... every day" reads badly; a past negation with a time ("did not ... yesterday") is fine.
    match c.tense {
        Tense::Present if !negate && rng.chance(35) => s.w(rng.pick(WHEN_PRESENT)),
        Tense::Past if rng.chance(35) => s.w(rng.pick(WHEN_PAST)),
        _ => {}
    }
}

/// A statement, sometimes followed by a second clause about the same subject ("but she never...").
fn statement(rng: &mut Rng, c: &Ctx, who: Who, s: &mut Sent) {
    let subj = subject(rng, c, who, s);
    let negate = rng.chance(30);
    predicate(rng, c, &subj, negate, s);
    if let Some(pron) = subj.pron.filter(|_| rng.chance(25)) {
        let second = !negate && rng.chance(50);
        s.ws(&[",", if second == negate { "and" } else { "but" }, pron]);
        predicate(rng, c, &subj, second, s);
    }
}

/// The document's first sentence: it names the protagonist, so later pronouns refer to them.
fn intro(rng: &mut Rng, c: &Ctx, s: &mut Sent) {
    let role = rng.pick(c.topic.roles)[0];
    let (t, a) = (c.tense, Agr::Third);
    if rng.chance(25) {
        if t == Tense::Past {
            let when = rng.pick(&["last summer", "last year", "a few years ago"]);
            s.ws(&[when, ",", "I met"]);
        } else {
            s.w("I know");
        }
        let lives = if t == Tense::Past {
            "in"
        } else {
            "who lives in"
        };
        return s.ws(&[article(role), role, "named", c.name, lives, c.city]);
    }
    s.w(c.name);
    if rng.chance(40) {
        s.w(c.surname);
    }
    match rng.below(3) {
        0 => s.ws(&[be(a, t), article(role), role, "from", c.city]),
        1 => s.ws(&[finite(WORK, a, t), "as", article(role), role, "at", c.org]),
        _ => {
            s.ws(&[finite(LIVE, a, t), "in", c.city]);
            s.ws(&["and", finite(WORK, a, t), "at", c.org]);
        }
    }
}

/// "It is windy in Oslo today." and the like (weather documents only).
fn weather_now(rng: &mut Rng, c: &Ctx, s: &mut Sent) {
    let cond = rng.pick(CONDITIONS);
    match (c.tense, rng.chance(50)) {
        (Tense::Present, true) => s.ws(&["it is", cond, "in", c.city, "today"]),
        (Tense::Present, false) => {
            let (often, rains) = (rng.pick(FREQUENCY), rng.pick(&["rains", "snows"]));
            let season = rng.pick(&["in winter", "in spring"]);
            s.ws(&["it", often, rains, "in", c.city, season]);
        }
        (Tense::Past, true) => s.ws(&["it was", cond, "in", c.city, rng.pick(WHEN_PAST)]),
        (Tense::Past, false) => {
            s.ws(&["it", rng.pick(&["rained", "snowed"]), "all day in", c.city])
        }
    }
}

/// A yes/no question with do-support: "Does she ever bake a sweet pie?"
fn question(rng: &mut Rng, c: &Ctx, s: &mut Sent) {
    s.w(""); // the auxiliary, known once the subject is chosen
    let who = rng.pick(&[Who::Hero, Who::HeroName, Who::You, Who::Roles, Who::Role]);
    let subj = subject(rng, c, who, s);
    s.parts[0].0 = finite(DO, subj.agr, c.tense);
    if rng.chance(25) {
        s.w("ever");
    }
    s.w(rng.pick(c.topic.verbs)[0]);
    object(rng, c, subj.poss, s);
    s.end = '?';
}

/// A sentence whose sentiment is `positive`: the polarity of its sentiment word, flipped when
/// the sentence is negated ("not", "never", "does not").
fn sentiment(rng: &mut Rng, c: &Ctx, positive: bool, s: &mut Sent) {
    let negate = rng.chance(40);
    let good = positive != negate;
    let adj = rng.pick(if good { POS_ADJ } else { NEG_ADJ });
    let [sg, pl] = rng.pick(c.topic.nouns);
    let (noun, agr) = if rng.chance(30) {
        (pl, Agr::Plural)
    } else {
        (sg, Agr::Third)
    };
    let degree = |rng: &mut Rng, s: &mut Sent| {
        if negate {
            s.w("not");
        } else if rng.chance(40) {
            s.w(rng.pick(INTENSIFIERS));
        }
    };
    let who = rng.pick(&[Who::Hero, Who::HeroName, Who::I, Who::We, Who::Friends]);
    match rng.below(4) {
        0 if !negate => {
            let a = if agr == Agr::Third { article(adj) } else { "" };
            s.ws(&["what", a, adj, noun]);
            s.end = '!';
        }
        0 | 1 => {
            s.ws(&["the", noun, be(agr, c.tense)]);
            degree(rng, s);
            s.w(adj);
        }
        2 => {
            let subj = subject(rng, c, who, s);
            let verb = rng.pick(if good { POS_VERBS } else { NEG_VERBS });
            verb_group(rng, verb, subj.agr, c.tense, negate, s);
            s.ws(&["the", noun]);
        }
        _ => {
            let subj = subject(rng, c, who, s);
            let that = if rng.chance(50) { "that" } else { "" };
            s.ws(&[
                finite(THINK, subj.agr, c.tense),
                that,
                "the",
                noun,
                be(agr, c.tense),
            ]);
            degree(rng, s);
            s.w(adj);
        }
    }
}

/// Writes a request from one of the topic's templates, filling its slots.
fn request(rng: &mut Rng, c: &Ctx, s: &mut Sent) {
    let template = rng.pick(c.topic.requests);
    let (body, end) = template.split_at(template.len() - 1);
    for piece in body.split_whitespace() {
        match piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(slot) => fill_slot(rng, c, slot, s),
            None => s.w(piece),
        }
    }
    s.end = end.chars().next().unwrap_or('.');
}

/// Fills one slot, preferring the document's own entities; a slot value never repeats within
/// a sentence (two teams, two cities). `past_date` is a `date` slot with a past value.
fn fill_slot(rng: &mut Rng, c: &Ctx, slot: &'static str, s: &mut Sent) {
    let list: &[&str] = match slot {
        "person" | "artist" if slot == "person" || rng.chance(40) => {
            s.slot(slot, c.name);
            if rng.chance(60) {
                s.slot(slot, c.surname);
            }
            return;
        }
        "city" | "from_city" => &[c.city],
        "org" => &[c.org],
        "pet" => return s.slot(slot, rng.pick(c.topic.nouns)[0]),
        "to_city" => CITIES,
        "artist" => BANDS,
        "restaurant" => RESTAURANTS,
        "party_size" => PARTY,
        "date" => FUTURE,
        "past_date" => return s.slot("date", rng.pick(PAST)),
        "time" => TIMES,
        "team" => TEAMS,
        "song" => SONGS,
        "genre" => GENRES,
        _ => CONDITIONS, // "condition"; the tests reject any other slot name
    };
    loop {
        let value = rng.pick(list);
        if list.len() == 1 || !(value == c.city || s.parts.iter().any(|p| p.0 == value)) {
            return s.slot(slot, value);
        }
    }
}

/// Any sentence after the first; the mix of kinds is fixed, the topic is the document's.
fn sentence(rng: &mut Rng, c: &Ctx, s: &mut Sent) {
    match rng.below(100) {
        0..=21 => statement(rng, c, Who::Hero, s),
        22..=29 => statement(rng, c, Who::HeroName, s),
        30..=36 => statement(rng, c, Who::Roles, s),
        37..=41 => statement(rng, c, Who::Role, s),
        42..=45 => statement(rng, c, Who::I, s),
        46..=48 => statement(rng, c, Who::We, s),
        49..=51 => statement(rng, c, Who::Friends, s),
        52..=71 => {
            let positive = rng.chance(50);
            sentiment(rng, c, positive, s);
        }
        72..=79 => question(rng, c, s),
        80..=89 => request(rng, c, s),
        _ if c.topic.intent == "get_weather" => weather_now(rng, c, s),
        _ => statement(rng, c, Who::Hero, s),
    }
}

fn document(rng: &mut Rng, s: &mut Sent, out: &mut String) {
    let c = Ctx::random(rng);
    for i in 0..3 + rng.below(6) {
        s.clear();
        if i == 0 {
            intro(rng, &c, s);
        } else {
            sentence(rng, &c, s);
        }
        s.render(out);
        out.push('\n');
    }
}

/// Generates the corpus for `seed`: documents of 3 to 8 sentences, one sentence per line,
/// separated by one blank line, ending with a newline. Stops at the first document boundary
/// at or after `target_bytes` (so `target_bytes == 0` gives an empty string).
pub fn generate_corpus(seed: u64, target_bytes: usize) -> String {
    let mut rng = Rng(seed);
    let mut s = Sent::new();
    let mut out = String::with_capacity(target_bytes + 1024);
    while out.len() < target_bytes {
        if !out.is_empty() {
            out.push('\n');
        }
        document(&mut rng, &mut s, &mut out);
    }
    out
}

/// Writes [`generate_corpus`]`(seed, target_bytes)` to `path` atomically; returns its size in bytes (the last
/// document ends past the target).
pub fn write_corpus(path: &Path, seed: u64, target_bytes: usize) -> Result<usize> {
    let text = generate_corpus(seed, target_bytes);
    crate::train::atomic::write_atomic(path, text.as_bytes())?;
    Ok(text.len())
}

/// One sentence labelled "positive" or "negative". The label follows from the words alone:
/// the polarity of the sentiment word, flipped by negation ("not", "never").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentimentExample {
    pub text: String,
    pub label: String,
}

/// `n` sentiment examples for `seed`, drawn from the corpus grammar (about half positive).
pub fn sentiment_examples(seed: u64, n: usize) -> Vec<SentimentExample> {
    let mut rng = Rng(seed);
    let mut s = Sent::new();
    (0..n)
        .map(|_| {
            let c = Ctx::random(&mut rng);
            let positive = rng.chance(50);
            s.clear();
            sentiment(&mut rng, &c, positive, &mut s);
            let label = if positive { "positive" } else { "negative" };
            SentimentExample {
                text: s.line(),
                label: label.to_string(),
            }
        })
        .collect()
}

/// One assistant request: its sentence as in the corpus, its whitespace tokens (the sentence
/// without its final punctuation), one BIO slot tag per token (`B-city`, `I-city`, `O`, ...)
/// and its intent (`book_restaurant`, `book_flight`, `get_weather`, `get_score`, `play_music`,
/// `schedule_meeting` or `find_vet`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IntentSlotExample {
    pub text: String,
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    pub intent: String,
}

/// `n` intent + slot examples for `seed`, drawn from the corpus grammar (topics uniform).
pub fn intent_slot_examples(seed: u64, n: usize) -> Vec<IntentSlotExample> {
    let mut rng = Rng(seed);
    let mut s = Sent::new();
    (0..n)
        .map(|_| {
            let c = Ctx::random(&mut rng);
            s.clear();
            request(&mut rng, &c, &mut s);
            let text = s.line();
            let words = &text[..text.len() - 1];
            IntentSlotExample {
                tokens: words.split_whitespace().map(str::to_string).collect(),
                tags: s.tags(),
                intent: c.topic.intent.to_string(),
                text,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn docs(text: &str) -> Vec<Vec<&str>> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        body.split("\n\n")
            .map(|d| d.split('\n').collect())
            .collect()
    }

    fn bare(token: &str) -> &str {
        token.trim_end_matches([',', '.', '?', '!'])
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace()
            .map(|w| bare(w).to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn same_seed_same_text_other_seed_other_text() {
        let a = generate_corpus(7, 50_000);
        assert_eq!(a, generate_corpus(7, 50_000));
        assert_ne!(a, generate_corpus(8, 50_000));
        assert_eq!(sentiment_examples(3, 50), sentiment_examples(3, 50));
        assert_ne!(sentiment_examples(3, 50), sentiment_examples(4, 50));
        assert_eq!(intent_slot_examples(3, 50), intent_slot_examples(3, 50));
        assert_ne!(intent_slot_examples(3, 50), intent_slot_examples(4, 50));
    }

    #[test]
    fn documents_have_three_to_eight_punctuated_lines() {
        let text = generate_corpus(1, 300_000);
        assert!(text.is_ascii() && text.ends_with('\n') && !text.ends_with("\n\n"));
        for doc in docs(&text) {
            assert!((3..=8).contains(&doc.len()), "{doc:?}");
            for line in doc {
                assert!(line.ends_with(['.', '?', '!']), "{line:?}");
                assert!(
                    line.starts_with(|c: char| c.is_ascii_uppercase()),
                    "{line:?}"
                );
                assert!(!line.contains("  ") && !line.contains(" ,"), "{line:?}");
            }
        }
    }

    #[test]
    fn stops_at_the_first_document_boundary_after_the_target() {
        let long = generate_corpus(9, 200_000);
        assert!(generate_corpus(9, 0).is_empty());
        for target in [1, 999, 20_000, 123_457] {
            let text = generate_corpus(9, target);
            assert!(text.len() >= target && long.starts_with(&text), "{target}");
            // Without its last document (and the blank line before it) the text is short of target.
            let last = text[..text.len() - 1].rfind("\n\n").map_or(0, |i| i + 1);
            assert!(last < target, "{target}: {last}");
        }
    }

    #[test]
    fn subjects_agree_with_their_verbs() {
        let all = TOPICS.iter().flat_map(|t| t.verbs);
        let all = all
            .chain(POS_VERBS)
            .chain(NEG_VERBS)
            .chain([&DO, &LIVE, &WORK, &THINK]);
        let (mut base, mut third, mut past) = (HashSet::new(), HashSet::new(), HashSet::new());
        for v in all {
            base.insert(v[0]);
            third.insert(v[1]);
            past.insert(v[2]);
        }
        base.retain(|b| !third.contains(b) && !past.contains(b));
        let nouns = |i: usize| -> HashSet<&str> {
            let roles = TOPICS.iter().flat_map(|t| t.roles.iter().chain(t.nouns));
            roles.map(|n| n[i]).collect()
        };
        let (singular, plural) = (nouns(0), nouns(1));
        let adverbs = ["never", "always", "often", "usually", "sometimes"];
        let text = generate_corpus(2, 1_000_000);
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let w = words(line);
            let question = ["do", "does", "did"].contains(&w[0].as_str());
            for i in 0..w.len() - 1 {
                let mut j = i + 1;
                while j + 1 < w.len() && adverbs.contains(&w[j].as_str()) {
                    j += 1;
                }
                let next = w[j].as_str();
                let after_aux = i > 0 && ["do", "does", "did"].contains(&w[i - 1].as_str());
                let then = |k: usize| w.get(k).map_or("", |s| s.as_str());
                let bad = match w[i].as_str() {
                    "he" | "she" | "it" if !after_aux => {
                        base.contains(next) || ["are", "were", "am", "do"].contains(&next)
                    }
                    "they" | "we" | "you" if !after_aux => {
                        third.contains(next) || ["is", "was", "am"].contains(&next)
                    }
                    "i" if !after_aux => {
                        third.contains(next) || ["is", "are", "were"].contains(&next)
                    }
                    "does" => {
                        ["they", "we", "you", "i"].contains(&next)
                            || next == "the" && plural.contains(then(j + 1))
                    }
                    "do" => {
                        ["he", "she", "it"].contains(&next)
                            || next == "the" && singular.contains(then(j + 1))
                    }
                    n if singular.contains(n) => {
                        ["are", "were"].contains(&next) || !question && base.contains(next)
                    }
                    n if plural.contains(n) => {
                        ["is", "was"].contains(&next) || third.contains(next)
                    }
                    _ => continue,
                };
                assert!(!bad, "agreement after {:?}: {line}", w[i]);
                checked += 1;
            }
        }
        assert!(checked > 20_000, "{checked}");
    }

    #[test]
    fn pronouns_refer_to_the_protagonist_named_first() {
        let text = generate_corpus(3, 500_000);
        let mut pronouns = 0;
        for doc in docs(&text) {
            let w: Vec<&str> = doc
                .iter()
                .flat_map(|l| l.split_whitespace().map(bare))
                .collect();
            let is_name = |w: &&str| MEN.contains(w) || WOMEN.contains(w);
            let at = w
                .iter()
                .position(is_name)
                .unwrap_or_else(|| panic!("no name: {doc:?}"));
            let female = WOMEN.contains(&w[at]);
            assert!(
                doc[0].contains(w[at]),
                "the first line names the protagonist: {doc:?}"
            );
            for (i, w) in w.iter().enumerate() {
                let gender = match w.to_ascii_lowercase().as_str() {
                    "he" | "his" => false,
                    "she" | "her" => true,
                    _ => continue,
                };
                assert!(gender == female && i > at, "{doc:?}");
                pronouns += 1;
            }
        }
        assert!(pronouns > 1000, "{pronouns}");
    }

    #[test]
    fn each_document_keeps_to_one_topic() {
        let mut topic_of = HashMap::new();
        for (i, t) in TOPICS.iter().enumerate() {
            for w in t.roles.iter().chain(t.nouns).flatten() {
                let before = topic_of.insert(*w, i);
                assert!(before.is_none_or(|b| b == i), "{w} is in two topics");
            }
        }
        let (mut docs_seen, mut off_topic) = (0, 0);
        for doc in docs(&generate_corpus(4, 500_000)) {
            let found = doc.iter().flat_map(|l| l.split_whitespace());
            let topics: HashSet<_> = found.filter_map(|w| topic_of.get(bare(w))).collect();
            assert!(topics.len() <= 1, "{doc:?}");
            (docs_seen, off_topic) = (docs_seen + 1, off_topic + usize::from(topics.is_empty()));
        }
        assert!(
            off_topic * 20 < docs_seen,
            "{off_topic} of {docs_seen} without topic words"
        );
    }

    #[test]
    fn sentiment_labels_are_balanced_and_follow_from_the_words() {
        let verbs = |vs: &[Verb]| vs.iter().flatten().copied().collect::<Vec<_>>();
        let good: HashSet<&str> = POS_ADJ.iter().copied().chain(verbs(POS_VERBS)).collect();
        let bad: HashSet<&str> = NEG_ADJ.iter().copied().chain(verbs(NEG_VERBS)).collect();
        let examples = sentiment_examples(6, 2000);
        let mut positives = 0;
        for ex in &examples {
            let w = words(&ex.text);
            let is_good = w.iter().any(|w| good.contains(w.as_str()));
            assert_ne!(
                is_good,
                w.iter().any(|w| bad.contains(w.as_str())),
                "{}",
                ex.text
            );
            let negated = w.iter().any(|w| w == "not" || w == "never");
            let expected = if is_good != negated {
                "positive"
            } else {
                "negative"
            };
            assert_eq!(ex.label, expected, "{}", ex.text);
            positives += usize::from(ex.label == "positive");
        }
        assert!(
            (800..=1200).contains(&positives),
            "{positives} of 2000 positive"
        );
    }

    #[test]
    fn intent_examples_have_one_valid_bio_tag_per_token() {
        let examples = intent_slot_examples(5, 3000);
        let mut intents = HashSet::new();
        for ex in &examples {
            assert_eq!(ex.tokens.len(), ex.tags.len(), "{ex:?}");
            assert_eq!(ex.text[..ex.text.len() - 1], ex.tokens.join(" "), "{ex:?}");
            let mut spans: Vec<(String, Vec<&str>)> = Vec::new();
            for (token, tag) in ex.tokens.iter().zip(&ex.tags) {
                if let Some(slot) = tag.strip_prefix("B-") {
                    spans.push((slot.to_string(), vec![token]));
                } else if let Some(slot) = tag.strip_prefix("I-") {
                    let open = spans.last_mut().filter(|s| s.0 == slot && !s.1.is_empty());
                    open.unwrap_or_else(|| panic!("I- without B-: {ex:?}"))
                        .1
                        .push(token);
                } else {
                    assert_eq!(tag, "O", "{ex:?}");
                }
            }
            assert!(!spans.is_empty(), "{ex:?}");
            for (slot, span) in &spans {
                let value = span.join(" ");
                let list = match slot.as_str() {
                    "city" | "from_city" | "to_city" => CITIES,
                    "team" => TEAMS,
                    "restaurant" => RESTAURANTS,
                    "org" => ORGS,
                    "song" => SONGS,
                    "genre" => GENRES,
                    "condition" => CONDITIONS,
                    "person" | "artist" | "party_size" | "date" | "time" | "pet" => continue,
                    other => panic!("unknown slot {other}: {ex:?}"),
                };
                assert!(list.contains(&value.as_str()), "{slot}={value}: {ex:?}");
            }
            intents.insert(ex.intent.as_str());
        }
        assert_eq!(intents.len(), TOPICS.len());
    }

    #[test]
    fn labelled_examples_use_the_corpus_vocabulary() {
        let vocab: HashSet<String> = words(&generate_corpus(12, 2_000_000)).into_iter().collect();
        let intents = intent_slot_examples(13, 500).into_iter().map(|e| e.text);
        let sentiments = sentiment_examples(13, 500).into_iter().map(|e| e.text);
        for text in intents.chain(sentiments) {
            let unseen: Vec<_> = words(&text)
                .into_iter()
                .filter(|w| !vocab.contains(w))
                .collect();
            assert!(unseen.is_empty(), "{unseen:?} in {text}");
        }
    }

    #[test]
    fn write_corpus_replaces_the_file_and_names_a_bad_path() {
        let dir = crate::testutil::scratch_dir("synth", "write");
        let path = dir.join("corpus.txt");
        std::fs::write(&path, "old").unwrap();
        write_corpus(&path, 11, 10_000).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            generate_corpus(11, 10_000)
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file is left"
        );
        let bad = dir.join("no-such-dir").join("corpus.txt");
        let err = write_corpus(&bad, 11, 100).unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
    }
}
