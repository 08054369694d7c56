//! HTML building blocks: escaping, the page frame, the stylesheet, and form controls sized for
//! a ward tablet (large touch targets, no JavaScript).

use std::fmt::Write as _;

use crate::followup::FieldErrors;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The stylesheet, served at `/static/desk.css` (a file of its own so the Content Security
/// Policy can forbid inline styles and scripts).
pub const STYLESHEET: &str = r#"
* { box-sizing: border-box; }
body { font: 18px/1.45 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #f6f7f9; }
header { background: #12395b; color: #fff; padding: 12px 20px; display: flex; align-items: center;
  justify-content: space-between; flex-wrap: wrap; gap: 8px; }
header a { color: #fff; font-weight: 600; text-decoration: none; margin-right: 18px; }
header form { margin: 0; display: inline; }
main { max-width: 980px; margin: 0 auto; padding: 16px 20px 60px; }
h1 { font-size: 1.5em; margin: 0.4em 0; }
h2 { font-size: 1.2em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 10px 8px; border-bottom: 1px solid #d8dde3; vertical-align: top; }
th { background: #e8edf2; }
a.button, button { display: inline-block; font: inherit; font-weight: 600; padding: 12px 20px; min-height: 48px;
  border-radius: 6px; border: 2px solid #12395b; background: #12395b; color: #fff; text-decoration: none;
  cursor: pointer; margin: 4px 8px 4px 0; }
a.button.secondary, button.secondary { background: #fff; color: #12395b; }
button.quiet { background: transparent; border-color: #fff; color: #fff; padding: 6px 14px; min-height: 0; }
fieldset { border: 1px solid #c4ccd5; border-radius: 6px; background: #fff; margin: 14px 0; padding: 12px 16px; }
fieldset.invalid { border: 3px solid #b00020; }
legend { font-weight: 700; padding: 0 6px; }
.choices { display: flex; flex-wrap: wrap; gap: 6px; }
.choices label { display: inline-flex; align-items: center; gap: 6px; min-width: 56px; min-height: 48px;
  padding: 6px 12px; border: 1px solid #9aa6b2; border-radius: 6px; background: #fbfcfd; cursor: pointer; }
.choices.stack label { min-width: 100%; }
.choices input { width: 22px; height: 22px; }
input[type=text], input[type=password], input[type=date], textarea { font: inherit; padding: 10px; width: 100%;
  max-width: 420px; border: 1px solid #9aa6b2; border-radius: 6px; }
textarea { max-width: 100%; min-height: 80px; }
.error { color: #b00020; font-weight: 700; margin: 4px 0 8px; }
.problems { border: 3px solid #b00020; background: #fff3f4; padding: 10px 16px; border-radius: 6px; }
.notice { border: 3px solid #1d7a3e; background: #eefaf2; padding: 10px 16px; border-radius: 6px; }
.hint { color: #4a5561; font-size: 0.9em; margin: 2px 0 8px; }
.identity { background: #fff; border-left: 6px solid #12395b; padding: 10px 16px; margin: 10px 0; }
.state-overdue { color: #b00020; font-weight: 700; }
.state-due_today { color: #8a5a00; font-weight: 700; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; background: #fff;
  padding: 12px 16px; border-radius: 6px; }
dl.summary dt { font-weight: 700; }
dl.summary dd { margin: 0; }
"#;

/// A whole page. `nurse` is (display name, CSRF token) when someone is signed in: the header
/// then shows the worklist link and the sign-out button.
pub fn page(title: &str, nurse: Option<(&str, &str)>, body: &str) -> String {
    let header = match nurse {
        Some((name, csrf)) => format!(
            r#"<header><nav><a href="/worklist">Worklist</a><a href="/recent">Recorded this session</a></nav>
<div>Signed in as <strong>{}</strong>
<form method="post" action="/sign-out"><input type="hidden" name="csrf" value="{}">
<button class="quiet" type="submit" id="sign-out">Sign out</button></form></div></header>"#,
            esc(name),
            esc(csrf)
        ),
        None => "<header><strong>TFESI follow-up desk</strong></header>".to_owned(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · TFESI follow-up desk</title>
<link rel="stylesheet" href="/static/desk.css"></head>
<body>{header}<main>{body}</main></body></html>"#,
        esc(title)
    )
}

/// The message for `field`, as a paragraph the field's controls refer to.
pub fn field_error(errors: &FieldErrors, field: &str) -> String {
    errors
        .get(field)
        .map(|message| format!(r#"<p class="error" id="{field}-error">{}</p>"#, esc(message)))
        .unwrap_or_default()
}

/// Messages about the whole form (the empty key), listed above it.
pub fn form_problems(errors: &FieldErrors) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<div class="problems" id="problems" role="alert"><p><strong>Nothing was saved.</strong></p><ul>"#,
    );
    if let Some(message) = errors.get("") {
        let _ = write!(out, "<li>{}</li>", esc(message));
    }
    let fields = errors.keys().filter(|key| !key.is_empty()).count();
    if fields > 0 {
        let _ = write!(
            out,
            "<li>Correct the {fields} marked field{} below.</li>",
            if fields == 1 { "" } else { "s" }
        );
    }
    out.push_str("</ul></div>");
    out
}

/// A group of radio buttons (or checkboxes) in a fieldset with its legend, hint and error.
pub struct Choices<'a> {
    /// Field name.
    pub name: &'a str,
    /// Legend.
    pub legend: &'a str,
    /// Hint under the legend.
    pub hint: &'a str,
    /// (value, label) of each choice.
    pub options: Vec<(String, String)>,
    /// Values currently chosen.
    pub chosen: Vec<String>,
    /// Checkboxes (several may be ticked) instead of radio buttons.
    pub multiple: bool,
    /// One choice per line instead of a row of buttons.
    pub stacked: bool,
}

impl Choices<'_> {
    /// The fieldset.
    pub fn render(&self, errors: &FieldErrors) -> String {
        let invalid = errors.contains_key(self.name);
        let kind = if self.multiple { "checkbox" } else { "radio" };
        let mut out = format!(
            r#"<fieldset id="{name}-group"{class}><legend>{legend}</legend>"#,
            name = self.name,
            class = if invalid { r#" class="invalid""# } else { "" },
            legend = esc(self.legend)
        );
        if !self.hint.is_empty() {
            let _ = write!(out, r#"<p class="hint">{}</p>"#, esc(self.hint));
        }
        out.push_str(&field_error(errors, self.name));
        let _ = write!(out, r#"<div class="choices{}">"#, if self.stacked { " stack" } else { "" });
        for (index, (value, label)) in self.options.iter().enumerate() {
            let checked = if self.chosen.contains(value) { " checked" } else { "" };
            let described =
                if invalid { format!(r#" aria-describedby="{}-error""#, self.name) } else { String::new() };
            let _ = write!(
                out,
                r#"<label for="{name}-{index}"><input type="{kind}" id="{name}-{index}" name="{name}" value="{value}"{checked}{described}>{label}</label>"#,
                name = self.name,
                value = esc(value),
                label = esc(label),
            );
        }
        out.push_str("</div></fieldset>");
        out
    }
}

/// Hidden inputs carrying `pairs` (the confirmation page's copy of the form).
pub fn hidden(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!(r#"<input type="hidden" name="{}" value="{}">"#, esc(name), esc(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc(r#"<b a="1">O'Neil & co</b>"#),
            "&lt;b a=&quot;1&quot;&gt;O&#39;Neil &amp; co&lt;/b&gt;"
        );
    }

    #[test]
    fn a_choice_group_marks_its_error_and_the_chosen_value() {
        let mut errors = FieldErrors::new();
        errors.insert("leg_nrs".into(), "Choose the leg pain score.".into());
        let html = Choices {
            name: "leg_nrs",
            legend: "Leg pain",
            hint: "",
            options: (0..=10).map(|n| (n.to_string(), n.to_string())).collect(),
            chosen: vec!["3".into()],
            multiple: false,
            stacked: false,
        }
        .render(&errors);
        assert!(html.contains(r#"class="invalid""#));
        assert!(html.contains(r#"id="leg_nrs-error""#));
        assert!(html.contains(r#"value="3" checked"#));
        assert_eq!(html.matches(r#"type="radio""#).count(), 11);
    }
}
