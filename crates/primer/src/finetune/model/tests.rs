use super::*;
use crate::models::bert::BertConfig;
use crate::models::gpt::GptConfig;

fn tiny_bert(task: Task, dropout: f32) -> Backbone {
    let mut cfg = BertConfig::new(23, 16, 2, 2, 8);
    cfg.intermediate_size = 12;
    cfg.hidden_dropout_prob = dropout;
    cfg.attention_probs_dropout_prob = dropout;
    let mut m = Bert::new(cfg, bert_heads(task), 3).unwrap();
    // non-trivial biases and gains so their wiring matters
    let mut rng = Rng::new(9);
    for spec in m.layout.specs() {
        if spec.shape.len() == 1 {
            m.params[spec.range()]
                .iter_mut()
                .for_each(|v| *v += 0.3 * rng.normal());
        }
    }
    Backbone::Bert(m)
}

fn tiny_gpt() -> Backbone {
    let cfg = GptConfig::new(23, 16, 2, 2, 8);
    Backbone::Gpt(Gpt::new(cfg, 4).unwrap())
}

/// Two sequences of 6 tokens, the second padded after 4, with labels for every head.
fn batch() -> TaskBatch {
    let i = xent::IGNORE;
    TaskBatch {
        batch: 2,
        seq: 6,
        ids: vec![2, 7, 9, 3, 11, 3, 2, 13, 3, 19, 0, 0],
        type_ids: vec![0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0],
        lens: vec![6, 4],
        seq_labels: vec![2, 0],
        tok_labels: vec![i, 1, 2, 0, 2, i, i, 2, 1, i, i, i],
        starts: vec![2, 1],
        ends: vec![4, 2],
    }
}

fn model(task: Task, backbone: Backbone, alpha: f32) -> TaskModel {
    let sizes = HeadSizes::for_task(task, 3, 4);
    let mut m = TaskModel::new(backbone, task, sizes, 1).unwrap();
    m.alpha = alpha;
    // heads with biases too
    let mut rng = Rng::new(2);
    let layout = m.backbone.layout().clone();
    let names = m.head_names();
    for spec in layout.specs().iter().filter(|s| names.contains(&s.name)) {
        m.backbone.params_mut()[spec.range()]
            .iter_mut()
            .for_each(|v| *v += 0.5 * rng.normal());
    }
    m
}

fn loss_and_grad(m: &TaskModel, x: &TaskBatch) -> (f64, Vec<f32>) {
    let mut g = vec![0.0; m.num_params()];
    let o = m
        .forward_backward(&mut Workspace::default(), x, Some(&mut g), 5)
        .unwrap();
    (o.loss, g)
}

/// Every tensor's gradient against central differences of the training loss (dropout masks fixed by the seed).
fn check_gradients(m: &TaskModel, what: &str) {
    let x = batch();
    let (_, g) = loss_and_grad(m, &x);
    let loss = |p: &[f32]| {
        let mut mp = m.clone();
        mp.backbone.params_mut().copy_from_slice(p);
        loss_and_grad(&mp, &x).0
    };
    let layout = m.backbone.layout();
    crate::testutil::check_gradients(layout, m.backbone.params(), &g, 5e-3, &loss, what);
}

#[test]
fn bert_heads_match_finite_differences() {
    for dropout in [0.0, 0.2] {
        for task in [Task::Classify, Task::Ner, Task::Qa, Task::IntentSlot] {
            let m = model(task, tiny_bert(task, dropout), 0.3);
            check_gradients(&m, &format!("{} dropout {dropout}", task.name()));
        }
    }
}

#[test]
fn gpt_classifier_matches_finite_differences() {
    check_gradients(&model(Task::Classify, tiny_gpt(), 0.5), "gpt classify");
}

#[test]
fn gpt_classifier_reads_the_last_real_token() {
    // the padded row's prediction must not depend on what sits in its padding
    let m = model(Task::Classify, tiny_gpt(), 0.5);
    let x = batch();
    let mut y = x.clone();
    y.ids[10] = 5;
    y.ids[11] = 6;
    let (a, b) = (
        m.forward_backward(&mut Workspace::default(), &x, None, 0)
            .unwrap(),
        m.forward_backward(&mut Workspace::default(), &y, None, 0)
            .unwrap(),
    );
    assert_eq!(a.seq_logits, b.seq_logits);
    // while changing its last real token does change it
    y.ids[9] = 5;
    let c = m
        .forward_backward(&mut Workspace::default(), &y, None, 0)
        .unwrap();
    assert_ne!(a.seq_logits[3..], c.seq_logits[3..]);
}

#[test]
fn joint_loss_weighting_at_alpha_zero_and_one() {
    let task = Task::IntentSlot;
    let x = batch();
    let at = |alpha: f32| {
        let m = model(task, tiny_bert(task, 0.0), alpha);
        let (loss, g) = loss_and_grad(&m, &x);
        let grad_of = |name: &str| {
            let spec = m.backbone.layout().get(name).unwrap().clone();
            g[spec.range()].iter().map(|v| v.abs()).sum::<f32>()
        };
        (
            loss,
            grad_of("intent_classifier.weight"),
            grad_of("slot_classifier.weight"),
        )
    };
    let (l0, intent0, slot0) = at(0.0);
    let (l1, intent1, slot1) = at(1.0);
    let (l3, _, _) = at(0.3);
    // α = 0: only the slot loss; α = 1: only the intent loss
    assert_eq!(intent0, 0.0);
    assert!(slot0 > 0.0);
    assert_eq!(slot1, 0.0);
    assert!(intent1 > 0.0);
    // and in between the weighted sum of the two
    assert!(
        (l3 - (0.3 * l1 + 0.7 * l0)).abs() < 1e-5,
        "{l3} vs {l0} and {l1}"
    );
    // the intent loss alone is the mean cross-entropy of the intent logits
    let m = model(task, tiny_bert(task, 0.0), 1.0);
    let o = m
        .forward_backward(&mut Workspace::default(), &x, None, 0)
        .unwrap();
    let ce = |row: &[f32], t: usize| {
        let mx = row.iter().copied().fold(f32::MIN, f32::max) as f64;
        let lse = mx + row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        lse - row[t] as f64
    };
    let want = (ce(&o.seq_logits[0..3], 2) + ce(&o.seq_logits[3..6], 0)) / 2.0;
    assert!((l1 - want).abs() < 1e-5, "{l1} vs {want}");
}

#[test]
fn span_loss_ignores_padding_positions() {
    let m = model(Task::Qa, tiny_bert(Task::Qa, 0.0), 0.5);
    let x = batch();
    let o = m
        .forward_backward(&mut Workspace::default(), &x, None, 0)
        .unwrap();
    // recompute the loss of the padded row by hand over its 4 real positions only
    let row = |col: usize, b: usize, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| o.tok_logits[(b * 6 + i) * 2 + col] as f64)
            .collect()
    };
    let ce = |v: &[f64], t: usize| {
        let mx = v.iter().copied().fold(f64::MIN, f64::max);
        mx + v.iter().map(|x| (x - mx).exp()).sum::<f64>().ln() - v[t]
    };
    let want = 0.5 * ((ce(&row(0, 0, 6), 2) + ce(&row(0, 1, 4), 1)) / 2.0)
        + 0.5 * ((ce(&row(1, 0, 6), 4) + ce(&row(1, 1, 4), 2)) / 2.0);
    assert!((o.loss - want).abs() < 1e-5, "{} vs {want}", o.loss);
}

#[test]
fn gpt_rejects_token_tasks() {
    let err = TaskModel::new(
        tiny_gpt(),
        Task::Ner,
        HeadSizes::for_task(Task::Ner, 3, 0),
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs a BERT"), "{err}");
}
