//! The date tool: date arithmetic and calendars (proleptic Gregorian, via `chrono`).

use async_trait::async_trait;
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ToolError;
use crate::tool::Tool;

/// The date tool's configuration (`kind: datetime`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateTimeConfig {
    /// The tool's name (default `datetime`).
    #[serde(default)]
    pub name: Option<String>,
    /// The date `today` answers, `YYYY-MM-DD`. Without it `today` is refused, so runs stay
    /// reproducible.
    #[serde(default)]
    pub today: Option<String>,
}

/// Date arithmetic: `add_days`, `subtract_days`, `weekday`, `days_between`, `add_months`,
/// `calendar` (a month as text), `today` (the configured date).
#[derive(Debug, Clone)]
pub struct DateTimeTool {
    name: String,
    today: Option<NaiveDate>,
}

impl DateTimeTool {
    /// A date tool with this configuration; fails on a malformed `today`.
    pub fn new(config: &DateTimeConfig) -> Result<DateTimeTool, String> {
        let today = config.today.as_deref().map(parse_date).transpose()?;
        Ok(DateTimeTool { name: config.name.clone().unwrap_or_else(|| "datetime".into()), today })
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| format!("expected a date as YYYY-MM-DD, found {text:?} ({e})"))
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn describe(date: NaiveDate) -> String {
    format!("{} ({})", date.format("%Y-%m-%d"), weekday_name(date.weekday()))
}

impl DateTimeTool {
    fn operate(&self, arguments: &Value) -> Result<String, String> {
        let operation = arguments["operation"].as_str().unwrap_or_default();
        let date = || -> Result<NaiveDate, String> {
            let text = arguments["date"].as_str().ok_or_else(|| format!("`{operation}` needs `date` (YYYY-MM-DD)"))?;
            parse_date(text)
        };
        let number = |field: &str| -> Result<i64, String> {
            arguments[field].as_i64().ok_or_else(|| format!("`{operation}` needs `{field}` (a whole number)"))
        };
        let shift = |date: NaiveDate, days: i64| -> Result<NaiveDate, String> {
            Duration::try_days(days)
                .and_then(|d| date.checked_add_signed(d))
                .ok_or_else(|| format!("{days} days from {date} is outside the supported range of dates"))
        };
        match operation {
            "add_days" => Ok(describe(shift(date()?, number("days")?)?)),
            "subtract_days" => Ok(describe(shift(date()?, -number("days")?)?)),
            "weekday" => Ok(weekday_name(date()?.weekday()).to_string()),
            "days_between" => {
                let end = arguments["end_date"]
                    .as_str()
                    .ok_or("`days_between` needs `end_date` (YYYY-MM-DD)")
                    .map_err(str::to_string)
                    .and_then(parse_date)?;
                Ok((end - date()?).num_days().to_string())
            }
            "add_months" => {
                let months = number("months")?;
                let start = date()?;
                let total = start.year() as i64 * 12 + start.month0() as i64 + months;
                let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
                let year = i32::try_from(year).map_err(|_| "the resulting year is out of range".to_string())?;
                // Clamp the day to the target month's length (Jan 31 + 1 month = Feb 28/29).
                let mut day = start.day();
                loop {
                    if let Some(d) = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, day) {
                        return Ok(describe(d));
                    }
                    if day <= 28 {
                        return Err("the resulting date is out of range".into());
                    }
                    day -= 1;
                }
            }
            "calendar" => {
                let year = number("year")?;
                let month = number("month")?;
                let first = i32::try_from(year)
                    .ok()
                    .and_then(|y| NaiveDate::from_ymd_opt(y, u32::try_from(month).ok()?, 1))
                    .ok_or_else(|| format!("no month {month} in year {year}"))?;
                Ok(calendar(first))
            }
            "today" => match self.today {
                Some(d) => Ok(describe(d)),
                None => Err("`today` is not configured for this tool; pass explicit dates".into()),
            },
            other => Err(format!(
                "unknown operation {other:?}; expected add_days, subtract_days, weekday, days_between, add_months, calendar or today"
            )),
        }
    }
}

/// A month laid out like `cal`: a title, `Mo Tu We Th Fr Sa Su`, then the weeks.
fn calendar(first: NaiveDate) -> String {
    let mut out = format!("{}\nMo Tu We Th Fr Sa Su\n", first.format("%B %Y"));
    let offset = first.weekday().num_days_from_monday() as usize;
    let mut cells: Vec<String> = vec!["  ".into(); offset];
    let mut day = first;
    while day.month() == first.month() {
        cells.push(format!("{:>2}", day.day()));
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    let weeks: Vec<String> = cells.chunks(7).map(|w| w.join(" ").trim_end().to_string()).collect();
    out.push_str(&weeks.join("\n"));
    out
}

#[async_trait]
impl Tool for DateTimeTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: "Date arithmetic on the Gregorian calendar. Operations: add_days (date, days), subtract_days (date, days), weekday (date), days_between (date, end_date: end minus start in days), add_months (date, months), calendar (year, month), today. Dates are YYYY-MM-DD.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "operation": {"type": "string", "enum": ["add_days", "subtract_days", "weekday", "days_between", "add_months", "calendar", "today"]},
                    "date": {"type": "string", "description": "YYYY-MM-DD"},
                    "end_date": {"type": "string", "description": "YYYY-MM-DD, for days_between"},
                    "days": {"type": "integer"},
                    "months": {"type": "integer"},
                    "year": {"type": "integer"},
                    "month": {"type": "integer", "minimum": 1, "maximum": 12}
                },
                "required": ["operation"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        self.operate(arguments).map_err(ToolError::InvalidInput)
    }
}
