//! ConText-style assertion of each word: is it negated, hedged, about a relative, hypothetical
//! or in the past (Harkema et al., "ConText: an algorithm for determining negation,
//! experiencer, and temporal status from clinical reports", J Biomed Inform 2009; Chapman et
//! al., NegEx, 2001). A trigger opens a scope over the next few words (or, for a post-trigger,
//! the few before it); a clause end or a terminator word closes it; a pseudo-trigger ("no
//! longer", "not only", "no change in") is a trigger word that opens nothing.
//!
//! These scopes are the reading's own. The tokeniser's `negated` flag stays as it is because
//! the models' hashed features were trained on it.

use textfeat::Token;

/// The context of one token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenContext {
    pub negated: bool,
    pub uncertain: bool,
    pub family: bool,
    pub hypothetical: bool,
    pub past: bool,
    /// Past by a long time ("ten years ago"): not a recent exposure either.
    pub long_ago: bool,
    /// The token is a trigger word itself (it never starts a finding).
    pub trigger: bool,
}

const NEG_SCOPE: u8 = 6;
const UNC_SCOPE: u8 = 5;
const HYP_SCOPE: u8 = 8;
/// A relative's history runs to the end of the sentence, or until the writer speaks of
/// themself again ("I", "me").
const FAM_SCOPE: u8 = 40;
const PAST_SCOPE: u8 = 6;
/// How far back a post-trigger ("chest pain denied", "rash resolved") reaches.
const POST_SCOPE: usize = 4;
/// How far back "... years ago" reaches in its clause.
const LONG_AGO_SCOPE: usize = 10;

/// "Ago" after months or years, with no onset word before it in the clause: "a seizure two
/// years ago" is history. "Started 3 days ago", "since 2 weeks ago" and "a fever 2 days ago"
/// date something the person has now (or had so lately it still counts), so they stay current.
fn long_ago(tokens: &[Token], i: usize) -> bool {
    let unit = (1..=2).filter_map(|k| i.checked_sub(k)).any(|j| {
        matches!(
            tokens[j].text.as_str(),
            "year" | "years" | "yr" | "yrs" | "month" | "months" | "decade" | "decades"
        )
    });
    let onset = (0..i).rev().take(LONG_AGO_SCOPE).take_while(|&j| tokens[j].text != ".").any(|j| {
        matches!(
            tokens[j].text.as_str(),
            "started"
                | "start"
                | "starting"
                | "began"
                | "begun"
                | "begin"
                | "came"
                | "since"
                | "onset"
                | "developed"
                | "first"
                | "noticed"
        )
    });
    unit && !onset
}
/// How far a comparison ("different to heartburn", "unlike my usual migraines") hedges.
const COMPARE_SCOPE: u8 = 3;

/// How many words before a question mark it hedges when its clause does not open as a
/// question ("hayfever?", "chest infection?").
const QUESTION_TAIL: usize = 3;

/// Words that open a question: a clause starting with one asks about all of it.
fn is_question_opener(w: &str) -> bool {
    matches!(
        w,
        "is" | "are"
            | "am"
            | "was"
            | "were"
            | "could"
            | "can"
            | "do"
            | "does"
            | "did"
            | "should"
            | "would"
            | "will"
            | "might"
            | "may"
            | "has"
            | "have"
            | "had"
            | "what"
            | "why"
            | "how"
            | "whats"
            | "isnt"
            | "any"
            | "anyone"
            | "anybody"
            | "possible"
            | "maybe"
            | "perhaps"
            | "or"
            | "cud"
            | "wud"
            | "shud"
            | "r"
    )
}

fn is_negation(w: &str) -> bool {
    matches!(
        w,
        "no" | "not"
            | "denies"
            | "denied"
            | "deny"
            | "denying"
            | "without"
            | "never"
            | "nor"
            | "neither"
            | "dont"
            | "doesnt"
            | "didnt"
            | "isnt"
            | "hasnt"
            | "havent"
            | "hadnt"
            | "wasnt"
            | "arent"
            | "werent"
            | "wont"
            | "nil"
            | "non"
            | "none"
            | "absence"
            | "nothing"
    )
}

/// Words after a negation word that make it a pseudo-negation ("no longer", "not only",
/// "no change in", "doesnt stop", "not helping").
fn is_pseudo_follower(w: &str) -> bool {
    matches!(
        w,
        "longer" | "only" | "just" | "change" | "changes" | "increase" | "improvement" | "improving" | "improved"
            | "better" | "worse" | "relief" | "help" | "helping" | "helped" | "stop" | "stopping" | "stopped"
            | "go" | "going" | "gone" | "settle" | "settling" | "settled" | "responding" | "response" | "eased"
            | "easing" | "ease" | "matter" | "fail" | "doubt" | "difference" | "wait" | "waiting" | "want"
            | "seem" | "seems" | "think" | "shift" | "budge" | "let" | "letting" | "touch" | "touching"
            // "A cough that won't quit", "won't clear up".
            | "quit" | "quitting" | "clear" | "clearing"
            // "Nothing helps the pain", "nothing touches it", "not coping with the vomiting",
            // "no end to the diarrhoea": what fails is the relief.
            | "helps" | "stops" | "touches" | "eases" | "shifts" | "budges" | "settles" | "clears" | "works"
            | "working" | "worked" | "cope" | "coping" | "copes" | "relieves" | "relieving" | "end"
            // "Not checked her temperature" says nothing of it.
            | "checked" | "check" | "checking" | "taken" | "take" | "took" | "measured" | "measure" | "tested"
    )
}

fn is_uncertainty(w: &str) -> bool {
    matches!(
        w,
        "maybe"
            | "possibly"
            | "possible"
            | "perhaps"
            | "might"
            | "query"
            | "queried"
            | "suspected"
            | "suspect"
            | "unsure"
            | "wondering"
            | "wonder"
            | "questionable"
            | "equivocal"
            | "probable"
            | "whether"
            | "unclear"
    )
}

fn is_hypothetical(w: &str) -> bool {
    matches!(
        w,
        "if" | "unless"
            | "should"
            | "would"
            | "incase"
            | "prevent"
            | "preventing"
            | "avoid"
            | "risk"
            | "advised"
            | "watch"
            | "monitor"
    )
}

/// "Watch" and "monitor" as things, not as advice: "heart rate on his watch", "the sats
/// monitor", "her baby monitor".
fn is_device_noun(w: &str, prev: &str) -> bool {
    matches!(w, "watch" | "monitor")
        && matches!(
            prev,
            "a" | "the"
                | "my"
                | "his"
                | "her"
                | "our"
                | "their"
                | "your"
                | "smart"
                | "apple"
                | "finger"
                | "sats"
                | "oxygen"
                | "baby"
                | "heart"
                | "bp"
                | "pressure"
                | "sugar"
                | "glucose"
                | "fitness"
                | "home"
        )
}

fn is_relative(w: &str) -> bool {
    matches!(
        w,
        "mother"
            | "father"
            | "mum"
            | "mom"
            | "mam"
            | "dad"
            | "brother"
            | "sister"
            | "grandmother"
            | "grandfather"
            | "grandma"
            | "grandpa"
            | "gran"
            | "granny"
            | "grandad"
            | "nan"
            | "nana"
            | "nanna"
            | "aunt"
            | "auntie"
            | "uncle"
            | "cousin"
            | "parents"
            | "parent"
            | "sibling"
            | "siblings"
            | "grandparents"
            | "grandparent"
            | "brothers"
            | "sisters"
            | "relatives"
            | "relative"
    )
}

fn is_terminator(w: &str) -> bool {
    matches!(
        w,
        "but" | "however" | "although" | "though" | "except" | "apart" | "aside" | "yet" | "whereas" | "which"
            | "who" | "has" | "have" | "had" | "is" | "was" | "are" | "reports" | "reported" | "complains"
            | "presents" | "presented" | "admits" | "feels" | "feeling" | "got" | "getting" | "developed"
            | "now" | "also" | "still" | "then" | "so" | "just" | "only" | "today" | "tonight" | "since"
            | "because" | "cause" | "cos" | "plus" | "did" | "shes" | "hes" | "its" | "im" | "ive" | "theyre" | "thats"
            | "i" | "he" | "she" | "we" | "they"
            // "No fever, been vomiting since last night", "no rash, keeps scratching".
            | "been" | "keeps" | "kept" | "seems" | "looks"
    )
}

/// Whether the negation word at `i` hedges what follows instead of denying it: "not sure",
/// "not clear", "don't think", "don't believe", "don't know if" or "whether".
fn hedge_follows(tokens: &[Token], i: usize) -> bool {
    let word = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    matches!(word(i + 1), "sure" | "certain" | "clear" | "think" | "believe")
        || word(i + 1) == "know" && matches!(word(i + 2), "if" | "whether")
}

/// A negation trigger that starts no scope of its own ("not only"), judged with the next
/// word; "never ... like this" is a first time, not a denial.
fn pseudo(tokens: &[Token], i: usize) -> bool {
    let next = tokens.get(i + 1).map_or("", |t| t.text.as_str());
    // "Doesn't want to feed" says poor feeding; "don't want to hurt myself" denies self-harm.
    if next == "want"
        && tokens[i + 2..]
            .iter()
            .take(3)
            .any(|t| matches!(t.text.as_str(), "hurt" | "harm" | "kill" | "die" | "end"))
    {
        return false;
    }
    // "Not sure if it's a rash" hedges (see `contexts_except`), it does not deny.
    if hedge_follows(tokens, i) {
        return true;
    }
    // "Nothing is touching the pain", "doesn't really help".
    let after = tokens.get(i + 2).map_or("", |t| t.text.as_str());
    if is_pseudo_follower(next)
        || (matches!(next, "is" | "really" | "seems" | "will" | "can" | "even")
            && is_pseudo_follower(after))
    {
        return true;
    }
    let w = tokens[i].text.as_str();
    // "Can't walk far without getting breathless": two negations, and the breathlessness
    // is there.
    if w == "without" {
        let before: Vec<&str> = tokens[..i]
            .iter()
            .rev()
            .take(6)
            .take_while(|t| t.text != ".")
            .map(|t| t.text.as_str())
            .collect();
        // (`before` runs backwards: "not able" is ["able", "not"].)
        if before.iter().any(|w| matches!(*w, "cant" | "cannot" | "couldnt" | "unable"))
            || before.windows(2).any(|p| matches!(p, ["able", "not" | "longer"]))
        {
            return true;
        }
    }
    // "Hasn't been himself", "not herself", "never used to get headaches (but now ...)".
    if matches!(next, "himself" | "herself" | "myself" | "themselves" | "yourself")
        || (next == "been"
            && matches!(after, "himself" | "herself" | "myself" | "themselves" | "right"))
        || (w == "never" && next == "used")
    {
        return true;
    }
    if w == "never" {
        let clause = tokens[i + 1..].iter().take_while(|t| t.text != ".").take(10);
        let words: Vec<&str> = clause.map(|t| t.text.as_str()).collect();
        if words.windows(2).any(|p| {
            matches!(p, ["like", "this" | "that" | "it"] | ["this", "bad"] | ["so", "bad"])
        }) || words.contains(&"before")
        {
            return true;
        }
    }
    // "no" before a number is a count ("no 2"), and "none" alone ends in a clause of its own.
    next.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// What a clause marker was in the original text.
fn marker(text: &str, t: &Token) -> u8 {
    text.as_bytes().get(t.start as usize).copied().unwrap_or(b'.')
}

/// The context of every token. `text` is the original text the tokens came from (their
/// offsets point into it); `patient_relative` is the relative the text is about, if the text
/// is about one ("my mum is 72 and ..."), whose findings are the patient's own.
pub fn contexts(text: &str, tokens: &[Token]) -> Vec<TokenContext> {
    contexts_except(text, tokens, &[])
}

/// As [`contexts`], with the tokens in `plain` read as ordinary words, not triggers: the
/// first word of a phrase that starts with one ("not breathing", "no appetite", "absent
/// pulses") belongs to the phrase and opens no scope.
pub fn contexts_except(text: &str, tokens: &[Token], plain: &[usize]) -> Vec<TokenContext> {
    let n = tokens.len();
    let mut out = vec![TokenContext::default(); n];
    let patient = patient_relative(tokens);
    let (mut neg, mut unc, mut hyp, mut fam, mut past) = (0u8, 0u8, 0u8, 0u8, 0u8);
    // Words since the last clause mark or negation trigger: a short list item after it.
    let mut since_item = 0usize;
    // Words of a hedged clause's own subject and verb that do not end the hedge: "I don't
    // think [I have] a temperature".
    let mut hedged_clause = 0u8;
    for i in 0..n {
        let t = &tokens[i];
        let w = t.text.as_str();
        if w == "." {
            match marker(text, t) {
                // "Denies: fever, cough" and "FHx: ..." keep their scope over a colon.
                b':' => {}
                // A comma inside a short list keeps a negation ("no fever, cough or rash").
                b',' if since_item <= 3 => {
                    neg = neg
                        .min(NEG_SCOPE)
                        .saturating_add(if neg > 0 { 3 } else { 0 })
                        .min(NEG_SCOPE);
                    unc = 0;
                }
                b',' => {
                    neg = 0;
                    unc = 0;
                }
                b'?' => {
                    // A question hedges what it asks about. A clause that opens as a question
                    // ("is it a rash?", "could this be a clot?") asks about all of it, back to
                    // the clause start; a clause that does not ("sneezing, blocked nose,
                    // hayfever?", "tired breathless craving ice anaemia?") asks only about its
                    // last words, and what it said before the guess is said.
                    let start = (0..i).rev().find(|&j| tokens[j].text == ".").map_or(0, |j| j + 1);
                    let first = |j: usize| tokens.get(j).map_or("", |t| t.text.as_str());
                    let opener = if matches!(
                        first(start),
                        "so" | "and" | "but" | "also" | "then" | "ok" | "hmm" | "um"
                    ) {
                        start + 1
                    } else {
                        start
                    };
                    let asks = opener < i && is_question_opener(first(opener));
                    let from =
                        if asks { start } else { start.max(i.saturating_sub(QUESTION_TAIL)) };
                    for o in &mut out[from..i] {
                        o.uncertain = true;
                    }
                    (neg, unc, hyp, fam, past) = (0, 0, 0, 0, 0);
                }
                _ => (neg, unc, hyp, fam, past) = (0, 0, 0, 0, 0),
            }
            since_item = 0;
            continue;
        }
        since_item += 1;
        // A list item that opens with an inability says it is there: "no fever, can't sleep"
        // is no fever and insomnia, whatever the denial before the comma.
        // So does one that opens on a subject of its own after a comma: "no gunk, his lips are
        // red and cracked" denies no lips.
        if since_item == 1 && i > 0 && tokens[i - 1].text == "." {
            let inability = matches!(
                t.text.as_str(),
                "cant"
                    | "cannot"
                    | "unable"
                    | "couldnt"
                    | "struggling"
                    | "struggles"
                    | "trouble"
                    | "difficulty"
            );
            let own_subject = marker(text, &tokens[i - 1]) == b','
                && matches!(
                    t.text.as_str(),
                    "his"
                        | "her"
                        | "my"
                        | "their"
                        | "he"
                        | "she"
                        | "hes"
                        | "shes"
                        | "i"
                        | "im"
                        | "ive"
                        | "its"
                        | "theres"
                        | "there"
                );
            if inability || own_subject {
                neg = 0;
            }
        }
        let next = tokens.get(i + 1).map_or("", |t| t.text.as_str());
        let prev = if i > 0 { tokens[i - 1].text.as_str() } else { "" };
        // A query mark written straight before a word ("?UTI") hedges it.
        if t.start > 0 && text.as_bytes().get(t.start as usize - 1) == Some(&b'?') {
            out[i].uncertain = true;
        }
        let trigger = if plain.contains(&i) {
            // A negation that leads a phrase ends the scope before it: in "no cough, not
            // eating", not eating is said, not denied.
            if is_negation(w) {
                neg = 0;
            }
            false
        } else {
            // Post-triggers reach back over the few words before them in the clause.
            let post = match (w, next) {
                ("denied" | "absent" | "negative" | "excluded", _)
                    if i > 0 && prev != "." && !is_negation(prev) && next != "for" =>
                {
                    Some(0u8)
                }
                ("ruled", "out") => Some(0),
                ("resolved" | "cleared" | "settled" | "subsided", _) => Some(1),
                ("went" | "gone", "away") => Some(1),
                ("ago", _) if long_ago(tokens, i) => Some(2),
                // "Had chickenpox as a girl".
                ("as", "a" | "an")
                    if tokens.get(i + 2).is_some_and(|t| {
                        matches!(
                            t.text.as_str(),
                            "child"
                                | "kid"
                                | "girl"
                                | "boy"
                                | "teenager"
                                | "teen"
                                | "baby"
                                | "toddler"
                                | "youngster"
                        )
                    }) =>
                {
                    Some(2)
                }
                _ => None,
            };
            if let Some(kind) = post {
                // "Had a withdrawal seizure two years ago": a long-past event reaches back
                // over its clause.
                let reach = if kind == 2 { LONG_AGO_SCOPE } else { POST_SCOPE };
                for j in (0..i).rev().take(reach) {
                    if tokens[j].text == "." {
                        break;
                    }
                    if kind == 0 {
                        out[j].negated = true
                    } else {
                        out[j].past = true;
                        out[j].long_ago |= kind == 2;
                    }
                }
                out[i].trigger = true;
                continue;
            }
            // "His brother had the same last week and now he has a fever": "now" and a new
            // subject come back to the patient.
            if matches!(w, "i" | "im" | "ive" | "me" | "id")
                || (w == "now"
                    && matches!(
                        next,
                        "he" | "she"
                            | "hes"
                            | "shes"
                            | "i"
                            | "im"
                            | "ive"
                            | "my"
                            | "our"
                            | "baby"
                            | "they"
                            | "theyre"
                    ))
            {
                fam = 0;
            }
            // "Hurts when I cough", "worse if he sneezes", "hurts to walk or cough": an action
            // that brings a symptom on is a circumstance, not a symptom of its own.
            if matches!(w, "when" | "whenever" | "if" | "to") {
                for j in i + 1..n.min(i + 5) {
                    let a = tokens[j].text.as_str();
                    if a == "." {
                        break;
                    }
                    if matches!(
                        a,
                        "cough"
                            | "coughs"
                            | "coughing"
                            | "coughed"
                            | "sneeze"
                            | "sneezes"
                            | "sneezing"
                            | "sneezed"
                    ) {
                        out[j].hypothetical = true;
                        break;
                    }
                    if !matches!(
                        a,
                        "i" | "he"
                            | "she"
                            | "they"
                            | "you"
                            | "we"
                            | "it"
                            | "walk"
                            | "stand"
                            | "move"
                            | "bend"
                            | "breathe"
                            | "laugh"
                            | "or"
                            | "and"
                            | "hard"
                            | "really"
                    ) {
                        break;
                    }
                }
            }
            // "No recent trauma to the area or recent falls": a denial goes on over "or".
            if neg > 0 && matches!(w, "or" | "nor") {
                neg = NEG_SCOPE + 1;
            }
            let mut trigger = false;
            let negation = is_negation(w);
            if negation && !pseudo(tokens, i) {
                neg = if w == "non" { 1 } else { NEG_SCOPE };
                trigger = true;
                since_item = 0;
            } else if negation
                && matches!(next, "change" | "changes")
                && !matches!(
                    tokens.get(i + 3).map(|t| t.text.as_str()),
                    Some("the" | "my" | "his" | "her" | "their" | "your")
                )
            {
                // "No change in bowel habit" denies a change in bowel habit, but "no change in urine
                // colour or smell" says nothing of what follows either way. (With "the" or "my",
                // "no change in the back pain", the pain is there: a plain pseudo-negation.)
                if i + 1 < n {
                    out[i + 1].negated = true;
                }
                unc = UNC_SCOPE + 1;
                trigger = true;
            } else if matches!(w, "nearly" | "almost")
                && matches!(
                    next,
                    "passed" | "blacked" | "fainted" | "collapsed" | "fell" | "choked" | "keeled"
                )
            {
                // "Nearly passed out" did not quite pass out, but says nothing firm either way:
                // a near faint is hedged, not denied (a denial would argue against what a
                // faint suggests).
                unc = 2;
                trigger = true;
            } else if negation && hedge_follows(tokens, i) {
                // "I don't think I have a temperature", "don't know if it's a fever": hedged,
                // neither said nor denied.
                unc = UNC_SCOPE + 2;
                hedged_clause = 2;
                trigger = true;
            } else if w == "free" && next == "of" || w == "negative" && next == "for" {
                neg = NEG_SCOPE;
                trigger = true;
            } else if (w == "different" && matches!(next, "to" | "from" | "than")) || w == "unlike"
            {
                // "Feels different to heartburn" compares: it neither has heartburn nor denies it.
                unc = COMPARE_SCOPE;
                trigger = true;
            } else if is_uncertainty(w)
                || (w == "may" && matches!(next, "be" | "have" | "need"))
                || (w == "could" && next == "be")
                || (w == "rule" && next == "out")
                || (w == "r" && next == "o")
            {
                unc = UNC_SCOPE;
                trigger = true;
            } else if matches!(
                w,
                "terrified" | "scared" | "afraid" | "frightened" | "petrified" | "fear" | "fearful"
            ) && next == "of"
                && tokens.get(i + 2).is_some_and(|t| t.text.len() > 4 && t.text.ends_with("ing"))
            {
                // "Terrified of gaining weight", "scared of having a stroke": what is feared is
                // not had.
                hyp = HYP_SCOPE;
                trigger = true;
            } else if (is_hypothetical(w) && !is_device_noun(w, prev))
                || (w == "in" && next == "case")
                || (w == "what" && next == "if")
                || (w == "look" && next == "out")
                || (w == "safety" && matches!(next, "net" | "netted" | "netting"))
            {
                hyp = HYP_SCOPE;
                trigger = true;
            } else if matches!(w, "fhx" | "fh")
                || (w == "family" && matches!(next, "history" | "hx"))
                || (w == "runs" && next == "in")
                || w == "hereditary"
                || (is_relative(w) && Some(w) != patient && relative_with_history(tokens, i))
            {
                fam = FAM_SCOPE;
                trigger = true;
            } else if matches!(w, "pmh" | "pmhx" | "previously" | "previous" | "prior" | "formerly")
                || (w == "used" && next == "to")
                || (matches!(w, "history" | "hx" | "ho")
                    && next == "of"
                    && !after_duration(tokens, i))
                || (w == "as"
                    && matches!(next, "a" | "child" | "kid" | "teenager" | "baby")
                    && i + 2 < n
                    && matches!(
                        tokens[i + 2].text.as_str(),
                        "child" | "kid" | "teenager" | "baby" | "teen"
                    ))
            {
                past = PAST_SCOPE;
                trigger = true;
            } else if hedged_clause > 0
                && unc > 0
                && matches!(
                    w,
                    "i" | "im"
                        | "ive"
                        | "he"
                        | "she"
                        | "its"
                        | "it"
                        | "has"
                        | "have"
                        | "had"
                        | "is"
                        | "was"
                        | "got"
                        | "shes"
                        | "hes"
                )
            {
                hedged_clause -= 1;
            } else if is_terminator(w) && !(i > 0 && out[i - 1].trigger) {
                neg = 0;
                unc = 0;
                hyp = 0;
                // "Previously fit and well, now vomiting": the past ends where the present
                // starts.
                if matches!(w, "now" | "today" | "tonight" | "presents" | "presented") {
                    past = 0;
                }
            }
            trigger
        };
        out[i] = TokenContext {
            negated: out[i].negated || (!trigger && neg > 0),
            uncertain: out[i].uncertain || (!trigger && unc > 0),
            family: !trigger && fam > 0,
            hypothetical: out[i].hypothetical || (!trigger && hyp > 0),
            past: out[i].past || (!trigger && past > 0),
            long_ago: out[i].long_ago,
            trigger,
        };
        if !trigger {
            neg = neg.saturating_sub(1);
            unc = unc.saturating_sub(1);
            hyp = hyp.saturating_sub(1);
            fam = fam.saturating_sub(1);
            past = past.saturating_sub(1);
        }
    }
    out
}

/// "history of" after a duration is the current illness ("a 3 day history of cough").
fn after_duration(tokens: &[Token], i: usize) -> bool {
    tokens[i.saturating_sub(3)..i].iter().any(|t| {
        t.text.bytes().next().is_some_and(|b| b.is_ascii_digit())
            || matches!(
                t.text.as_str(),
                "day"
                    | "days"
                    | "week"
                    | "weeks"
                    | "month"
                    | "months"
                    | "hour"
                    | "hours"
                    | "year"
                    | "years"
                    | "long"
                    | "short"
                    | "recent"
            )
    })
}

/// A relative followed, in the same clause, by what marks their own history ("my dad had a
/// heart attack", "mother died of", "sister has asthma").
fn relative_with_history(tokens: &[Token], i: usize) -> bool {
    // "Brought in by her mother with a 9 kg weight loss": the relative brings the patient; what
    // follows is the patient's.
    let before = |k: usize| if i >= k { tokens[i - k].text.as_str() } else { "" };
    if before(1) == "by" || (matches!(before(1), "her" | "his" | "their") && before(2) == "by") {
        return false;
    }
    tokens[i + 1..].iter().take_while(|t| t.text != ".").take(4).any(|t| {
        matches!(
            t.text.as_str(),
            "had"
                | "has"
                | "died"
                | "passed"
                | "suffered"
                | "suffers"
                | "diagnosed"
                | "with"
                | "got"
        )
    })
}

/// The relative a text is about: one named in the first clause as its subject ("My mum is
/// 72", "dad is 79 and ..."), before any first-person statement about the writer's own body.
fn patient_relative(tokens: &[Token]) -> Option<&str> {
    let first: Vec<&str> =
        tokens.iter().take_while(|t| t.text != ".").take(10).map(|t| t.text.as_str()).collect();
    let at = first.iter().position(|w| is_relative(w))?;
    let own = first[at + 1..].iter().take(3).any(|w| {
        w.bytes().next().is_some_and(|b| b.is_ascii_digit())
            || matches!(
                *w,
                "is" | "s"
                    | "aged"
                    | "age"
                    | "seems"
                    | "keeps"
                    | "cant"
                    | "wont"
                    | "woke"
                    | "fell"
                    | "started"
                    | "been"
                    | "isnt"
                    | "looks"
                    | "says"
                    | "complains"
                    | "feels"
                    | "felt"
                    | "became"
                    | "went"
                    | "collapsed"
                    | "suddenly"
            )
    });
    // "My mother has a cough and a fever", in a text where the writer never speaks of
    // themself: the mother is the patient, not a family history.
    let subject = at <= 1 && (at == 0 || matches!(first[0], "my" | "our"));
    // "My mum had a fall this morning": what a relative had today is the illness now.
    let today = || {
        first[at + 1..].iter().any(|w| {
            matches!(*w, "today" | "yesterday" | "tonight" | "morning" | "overnight" | "earlier")
        })
    };
    let told = || {
        (first[at + 1..].iter().take(2).any(|w| matches!(*w, "has" | "got" | "s"))
            || (first.get(at + 1) == Some(&"had") && today()))
            && !tokens
                .iter()
                .any(|t| matches!(t.text.as_str(), "i" | "im" | "ive" | "id" | "me" | "myself"))
    };
    (own || (subject && told())).then_some(first[at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use textfeat::tokenize;

    fn flagged(text: &str, pick: fn(&TokenContext) -> bool) -> Vec<String> {
        let tokens = tokenize(text);
        contexts(text, &tokens)
            .iter()
            .zip(&tokens)
            .filter(|(c, _)| pick(c))
            .map(|(_, t)| t.text.clone())
            .collect()
    }

    #[test]
    fn negation_scope_and_lists() {
        assert_eq!(flagged("headache and a stiff neck, no rash", |c| c.negated), ["rash"]);
        assert_eq!(
            flagged("denies chest pain, palpitations or fever", |c| c.negated),
            ["chest", "pain", "palpitations", "or", "fever"]
        );
        assert_eq!(flagged("no fever but has a bad cough", |c| c.negated), ["fever"]);
        assert_eq!(
            flagged("I havent had any thoughts of ending my life", |c| c.negated),
            ["had", "any", "thoughts", "of", "ending", "my"]
        );
        assert_eq!(flagged("No vomiting. The headache is terrible", |c| c.negated), ["vomiting"]);
        assert_eq!(flagged("Denies: fever, cough", |c| c.negated), ["fever", "cough"]);
        // A list counts from its negation, however long the clause before it.
        assert_eq!(
            flagged("She tells me there is no hearing loss, tinnitus or headache", |c| c.negated),
            ["hearing", "loss", "tinnitus", "or", "headache"]
        );
    }

    #[test]
    fn pseudo_negations_negate_nothing() {
        for text in [
            "not only a headache but also vomiting",
            "no change in the pain",
            "he no longer eats",
            "the cough doesnt stop",
            "paracetamol is not helping the fever",
            "never had a headache like this before",
            "cant stop coughing",
        ] {
            assert!(flagged(text, |c| c.negated).is_empty(), "{text}");
        }
    }

    #[test]
    fn non_negates_one_word() {
        assert_eq!(flagged("non productive cough", |c| c.negated), ["productive"]);
    }

    #[test]
    fn post_triggers_reach_back() {
        assert_eq!(flagged("chest pain denied", |c| c.negated), ["chest", "pain"]);
        assert_eq!(flagged("the rash cleared last week", |c| c.past), ["the", "rash"]);
    }

    #[test]
    fn uncertainty() {
        assert_eq!(
            flagged("maybe a slight temperature", |c| c.uncertain),
            ["a", "slight", "temperature"]
        );
        assert_eq!(flagged("?UTI. dysuria", |c| c.uncertain), ["uti"]);
        assert_eq!(flagged("is it a rash?", |c| c.uncertain), ["is", "it", "a", "rash"]);
        assert_eq!(flagged("nearly passed out getting up", |c| c.uncertain), ["passed", "out"]);
        assert!(flagged("nearly passed out getting up", |c| c.negated).is_empty());
    }

    #[test]
    fn family_history() {
        assert_eq!(
            flagged("my dad had a heart attack", |c| c.family),
            ["had", "a", "heart", "attack"]
        );
        assert_eq!(flagged("FHx: father MI at 50", |c| c.family), ["father", "mi", "at", "50"]);
        // A text about the mother: her own findings are the patient's.
        assert!(flagged("my mum is 72 and she has chest pain", |c| c.family).is_empty());
        assert!(flagged("my mum had a fall this morning", |c| c.family).is_empty());
        assert!(!flagged("my mum had a stroke at 60", |c| c.family).is_empty());
        assert!(
            !flagged("his brother had it last week and now he has a fever", |c| c.family)
                .iter()
                .any(|w| w == "fever")
        );
    }

    #[test]
    fn hypothetical_and_past() {
        assert_eq!(
            flagged("call if she gets a rash", |c| c.hypothetical),
            ["she", "gets", "a", "rash"]
        );
        assert!(flagged("nothing helps the headache", |c| c.negated).is_empty());
        assert!(flagged("not sure if its a rash", |c| c.negated).is_empty());
        assert!(flagged("not sure if its a rash", |c| c.uncertain).iter().any(|w| w == "rash"));
        for hedged in [
            "i dont think i have a temperature",
            "dont know if i have a temperature",
            "i dont believe i have a temperature",
        ] {
            assert!(flagged(hedged, |c| c.negated).is_empty(), "{hedged}");
            assert!(
                flagged(hedged, |c| c.uncertain).iter().any(|w| w == "temperature"),
                "{hedged}"
            );
        }
        assert!(
            !flagged("previously fit and well, now vomiting", |c| c.past)
                .iter()
                .any(|w| w == "vomiting")
        );
        assert_eq!(flagged("no fever, been vomiting", |c| c.negated), ["fever"]);
        assert_eq!(flagged("hasnt been vomiting", |c| c.negated), ["been", "vomiting"]);
        assert!(flagged("cant walk far without getting breathless", |c| c.negated).is_empty());
        assert!(
            flagged("hasnt been himself, vomiting since the morning", |c| c.negated).is_empty()
        );
        assert_eq!(
            flagged("walks without getting breathless", |c| c.negated),
            ["getting", "breathless"]
        );
        assert_eq!(
            flagged("no cough, walks without getting breathless", |c| c.negated),
            ["cough", "walks", "getting", "breathless"]
        );
        assert!(
            flagged("no longer able to walk far without getting breathless", |c| c.negated)
                .is_empty()
        );
        assert!(flagged("had chickenpox as a girl", |c| c.past).iter().any(|w| w == "chickenpox"));
        assert!(
            flagged("terrified of gaining weight", |c| c.hypothetical)
                .iter()
                .any(|w| w == "weight")
        );
        assert!(flagged("scared of the pain in my chest", |c| c.hypothetical).is_empty());
        assert_eq!(flagged("history of asthma", |c| c.past), ["of", "asthma"]);
        assert!(flagged("3 day history of cough", |c| c.past).is_empty());
    }
}
