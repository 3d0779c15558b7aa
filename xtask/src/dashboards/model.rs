//! The small description a dashboard is written in, and its rendering to Grafana JSON
//! (dashboard `schemaVersion` 39, as Grafana 10/11 save it). Every panel and every query takes
//! the datasource from the `datasource` variable, so a user picks their Prometheus once.

use serde_json::{Value, json};

/// The datasource variable every panel uses.
pub const DATASOURCE_VARIABLE: &str = "datasource";
/// Grafana's dashboard schema version the JSON is written for.
pub const SCHEMA_VERSION: u64 = 39;
/// Grid width of a dashboard (Grafana's fixed 24 columns).
const GRID_WIDTH: u32 = 24;
/// Height of every panel, in grid rows (30 px each).
const PANEL_HEIGHT: u32 = 8;

/// One dashboard.
pub struct Dashboard {
    /// Stable `uid`: links and provisioning find the dashboard by it, so it never changes.
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub tags: Vec<&'static str>,
    /// Variables after the datasource one, in display order.
    pub variables: Vec<Variable>,
    /// Links to other dashboards (by uid) shown in the top bar.
    pub links: Vec<(&'static str, &'static str)>,
    pub rows: Vec<Row>,
}

/// A dashboard variable. Its value in a query is `$name`; every variable has an "All" value,
/// so queries compare with `=~`.
pub enum Variable {
    /// Values of the label `name` on the series `metric` (a selector), from the datasource
    /// (`label_values(metric, name)`); `display` is shown beside the drop-down.
    LabelValues {
        name: &'static str,
        display: &'static str,
        metric: &'static str,
    },
    /// A fixed list of values (e.g. the operators' scrape jobs).
    Custom {
        name: &'static str,
        display: &'static str,
        values: Vec<String>,
    },
}

impl Variable {
    /// The variable's name (`$name` in queries).
    pub fn name(&self) -> &'static str {
        match self {
            Variable::LabelValues { name, .. } | Variable::Custom { name, .. } => name,
        }
    }

    /// The regex "All" stands for: `.*` for label values, the values joined by `|` for a
    /// custom list (so "All" never matches a job that is not listed).
    pub fn all_value(&self) -> String {
        match self {
            Variable::LabelValues { .. } => ".*".to_owned(),
            Variable::Custom { values, .. } => values.join("|"),
        }
    }
}

/// A titled row of panels.
pub struct Row {
    pub title: &'static str,
    pub panels: Vec<Panel>,
}

/// What a panel draws.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A graph over time.
    TimeSeries,
    /// The current value, big.
    Stat,
}

/// One panel.
pub struct Panel {
    pub title: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    /// Grafana unit id (`s`, `bytes`, `ops`, `percentunit`, `short`, …).
    pub unit: &'static str,
    /// Width in grid columns (of 24).
    pub width: u32,
    pub queries: Vec<Query>,
}

/// One PromQL query of a panel and the legend of its series.
pub struct Query {
    pub expr: String,
    pub legend: &'static str,
}

/// A query with a legend (`{{label}}` templates allowed).
pub fn query(expr: impl Into<String>, legend: &'static str) -> Query {
    Query {
        expr: expr.into(),
        legend,
    }
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": format!("${{{DATASOURCE_VARIABLE}}}")})
}

impl Dashboard {
    /// The Grafana JSON of the dashboard.
    pub fn render(&self) -> Value {
        let mut panels = Vec::new();
        let mut id = 1;
        let mut y = 0;
        for row in &self.rows {
            panels.push(json!({
                "id": id, "type": "row", "title": row.title, "collapsed": false,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }));
            id += 1;
            y += 1;
            let mut x = 0;
            for panel in &row.panels {
                if x + panel.width > GRID_WIDTH {
                    x = 0;
                    y += PANEL_HEIGHT;
                }
                panels.push(panel.render(id, x, y));
                id += 1;
                x += panel.width;
            }
            y += PANEL_HEIGHT;
        }
        let mut variables = vec![json!({
            "name": DATASOURCE_VARIABLE, "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": [],
        })];
        variables.extend(self.variables.iter().map(Variable::render));
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|(title, uid)| {
                json!({"title": title, "type": "link", "url": format!("/d/{uid}"),
                       "keepTime": true, "includeVars": false, "icon": "dashboard",
                       "targetBlank": false, "tags": [], "asDropdown": false, "tooltip": ""})
            })
            .collect();
        json!({
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": true,
            "graphTooltip": 1,
            "timezone": "browser",
            "time": {"from": "now-6h", "to": "now"},
            "refresh": "1m",
            "fiscalYearStartMonth": 0,
            "liveNow": false,
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard",
            }]},
            "links": links,
            "templating": {"list": variables},
            "panels": panels,
        })
    }
}

impl Variable {
    fn render(&self) -> Value {
        let common = json!({
            "name": self.name(), "includeAll": true, "multi": true, "allValue": self.all_value(),
            "current": {"selected": true, "text": ["All"], "value": ["$__all"]}, "hide": 0,
        });
        let specific = match self {
            Variable::LabelValues {
                name,
                display,
                metric,
            } => {
                let definition = format!("label_values({metric}, {name})");
                json!({
                    "label": display, "type": "query", "datasource": datasource(),
                    "definition": definition,
                    "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                    "refresh": 2, "sort": 1, "regex": "", "options": [],
                })
            }
            Variable::Custom {
                display, values, ..
            } => {
                let options: Vec<Value> = values
                    .iter()
                    .map(|v| json!({"selected": false, "text": v, "value": v}))
                    .collect();
                json!({"label": display, "type": "custom", "query": values.join(","),
                       "options": options})
            }
        };
        merge(common, specific)
    }
}

impl Panel {
    fn render(&self, id: u32, x: u32, y: u32) -> Value {
        let targets: Vec<Value> = self
            .queries
            .iter()
            .zip('A'..='Z')
            .map(|(query, ref_id)| {
                json!({"refId": ref_id.to_string(), "datasource": datasource(),
                       "expr": query.expr, "legendFormat": query.legend, "range": true,
                       "instant": false, "editorMode": "code"})
            })
            .collect();
        let (kind, options, custom) = match self.kind {
            Kind::TimeSeries => (
                "timeseries",
                json!({"legend": {"displayMode": "table", "placement": "bottom", "showLegend": true,
                                  "calcs": ["lastNotNull", "max"]},
                       "tooltip": {"mode": "multi", "sort": "desc"}}),
                json!({"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                       "showPoints": "never", "spanNulls": false}),
            ),
            Kind::Stat => (
                "stat",
                json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                       "colorMode": "value", "graphMode": "none", "justifyMode": "auto",
                       "orientation": "auto", "textMode": "auto"}),
                json!({}),
            ),
        };
        json!({
            "id": id,
            "type": kind,
            "title": self.title,
            "description": self.description,
            "datasource": datasource(),
            "gridPos": {"h": PANEL_HEIGHT, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": self.unit, "custom": custom,
                                          "color": {"mode": "palette-classic"}},
                            "overrides": []},
            "options": options,
            "targets": targets,
        })
    }
}

/// `base` with the keys of `extra` added (both objects).
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}
