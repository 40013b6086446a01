"""Per-sample numpy transcriptions of the reference evaluation code (evaluation.md part A),
written plainly so they can be read against the notes. Tests compare the batched torch API with them."""

import warnings

import numpy as np
import torch
from sklearn.metrics import average_precision_score


def normalize_img(value):
    vmin, vmax = value.min(), value.max()
    if not (vmax - vmin) == 0:
        value = (value - vmin) / (vmax - vmin)
    return value


def sk_ap(y_true, y_score):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return average_precision_score(y_true, y_score)


def cal_ciou(infer, gt):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(infer * gt) / (np.sum(gt) + np.sum(infer * (gt == 0)))


# --- NoPrior test_step (A.4) ---------------------------------------------------------------------


def noprior_binarize(frame):
    pred = normalize_img(frame.copy())
    thr = np.sort(pred.flatten())[int(pred.size * 0.5)]
    pred[pred > thr] = 1
    pred[pred < 1] = 0
    return pred


def noprior_sample(maps, gts):
    """maps (n, K*H, W) float32, gts (K, H, W) -> (iou list, cap list, piap or None, count flag)."""
    k, h, _ = gts.shape
    true = 1 if len(maps) == k else 0
    if len(maps) == 0:
        return [], [], None, true
    total = maps[0].copy()
    for m in maps[1:]:
        total = total + m
    piap_pred = np.concatenate([noprior_binarize(total[i * h : (i + 1) * h]).flatten() for i in range(k)])
    piap = sk_ap(gts.reshape(-1), piap_pred)
    gt = gts.copy()
    iou, cap = [], []
    for m in maps:
        cious, aps = [], []
        for i in range(k):
            pred = noprior_binarize(m[i * h : (i + 1) * h])
            cious.append(cal_ciou(pred >= 0.5, gt[i]))
            aps.append(sk_ap(gt[i].flatten(), pred.flatten()))
        j = int(np.argmax(cious))
        iou.append(cious[j])
        cap.append(aps[j])
        gt[j] = 0
    for _ in range(k - len(maps)):
        iou.append(0)
        cap.append(0)
    return iou, cap, piap, true


def noprior_epoch(samples):
    """samples: list of (maps, gts) -> dict of the logged numbers."""
    iou, cap, piap, true = [], [], [], []
    for maps, gts in samples:
        a, b, p, t = noprior_sample(maps, gts)
        iou += a
        cap += b
        true.append(t)
        if p is not None:
            piap.append(p)
    iou = np.array(iou, dtype=np.float64)
    x = [0.05 * i for i in range(21)]
    y = [np.sum(iou >= t) / len(iou) for t in x]
    from sklearn.metrics import auc

    return {
        "ciou@0.5": np.sum(iou >= 0.5) / len(iou),
        "ciou@0.3": np.sum(iou >= 0.3) / len(iou),
        "auc": auc(x, y),
        "cap": np.mean(cap),
        "piap": np.mean(piap),
        "count_accuracy": np.mean(true),
    }


# --- SLAVC EvaluatorFull (A.3) -------------------------------------------------------------------


def slavc_precision_recall(bb_list, ciou_list, conf_list, conf_thr, ciou_thr=0.5):
    tp = fp = fn = 0
    for bb, ciou, conf in zip(bb_list, ciou_list, conf_list):
        if bb == 0:
            if conf >= conf_thr:
                fp += 1
        elif conf >= conf_thr:
            if ciou >= ciou_thr:
                tp += 1
            else:
                fp += 1
        else:
            fn += 1
    precision = 1.0 if tp + fp == 0 else tp / (tp + fp)
    recall = 1.0 if tp + fn == 0 else tp / (tp + fn)
    return precision, recall


def slavc_ap(bb_list, ciou_list, conf_list, iou_thr=0.5):
    precision, recall, skip = [], [], max(1, len(ciou_list) // 200)
    for thr in np.sort(np.array(conf_list))[:-1][::-skip]:
        p, r = slavc_precision_recall(bb_list, ciou_list, conf_list, thr, iou_thr)
        precision.append(p)
        recall.append(r)
    pmax = [np.max(precision[i:]) for i in range(len(precision))]
    return sum(pmax[i] * (recall[i + 1] - recall[i]) for i in range(len(pmax) - 1))


def slavc_stats(bb, ciou, conf, area, iou_thrs=(0.5, 0.75)):
    bins = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 144**2), "huge": (144**2, 10000**2)}
    out = {}
    for t in iou_thrs:
        for subset in ["all", "visible", *bins]:
            if subset == "all":
                ss = list(range(len(bb)))
            elif subset == "visible":
                ss = [i for i, b in enumerate(bb) if b > 0]
            else:
                lo, hi = bins[subset]
                ss = [i for i, a in enumerate(area) if lo <= a < hi and bb[i] > 0]
            key = f"{subset}@{int(t * 100)}"
            if not ss:
                continue
            b, c, s = [bb[i] for i in ss], [ciou[i] for i in ss], [conf[i] for i in ss]
            out[f"Precision-{key}"] = slavc_precision_recall(b, c, s, -1000, t)[0]
            out[f"AP-{key}"] = slavc_ap(b, c, s, t)
            vis = np.array([c[i] for i, x in enumerate(b) if x > 0])
            from sklearn.metrics import auc

            out[f"AUC-{key}"] = auc([0.05 * i for i in range(21)], [np.sum(vis >= 0.05 * i) / len(vis) for i in range(21)]) if len(vis) else np.nan
            thr = list(sorted(s))[:: max(1, len(s) // 10)]
            pr = [slavc_precision_recall(b, c, s, x, t) for x in thr]
            out[f"F1-{key}"] = [2 * r * p / (r + p) if r + p > 0 else 0.0 for p, r in pr]
    return out


# --- AVSBench S4 (A.5) ---------------------------------------------------------------------------


def avs_mask_iou(pred, target, eps=1e-7):
    n = pred.size(0)
    num_pixels = pred.size(-1) * pred.size(-2)
    no_obj = target.sum(2).sum(1) == 0
    pred = (torch.sigmoid(pred) > 0.5).int()
    inter = (pred * target).sum(2).sum(1)
    union = torch.max(pred, target).sum(2).sum(1)
    inter[no_obj] = ((1 - target) * (1 - pred)).sum(2).sum(1)[no_obj]
    union[no_obj] = num_pixels
    return torch.sum(inter / (union + eps)) / n


def avs_fmeasure(pred, gt, pr_num=255):
    pred = torch.sigmoid(pred)
    avg_f, img_num, score = 0.0, 0, torch.zeros(pr_num)
    for i in range(pred.size(0)):
        if torch.mean(gt[i]) == 0.0:
            continue
        thlist = torch.linspace(0, 1 - 1e-10, pr_num)
        prec, recall = torch.zeros(pr_num), torch.zeros(pr_num)
        for j in range(pr_num):
            y = (pred[i] >= thlist[j]).float()
            tp = (y * gt[i]).sum()
            prec[j], recall[j] = tp / (y.sum() + 1e-20), tp / (gt[i].sum() + 1e-20)
        f = (1 + 0.3) * prec * recall / (0.3 * prec + recall)
        f[f != f] = 0
        avg_f += f
        img_num += 1
        score = avg_f / img_num
    return score.max().item()


# --- single-source rules (A.0) -------------------------------------------------------------------


def single_source_infer(h, gt, rule):
    """Predicted pixels of one float32 map under a reference's rule (the straightforward loop)."""
    n = h.size
    if rule == "sspl":
        with np.errstate(invalid="ignore", divide="ignore"):
            pred = (h - h.min()) / np.ptp(h)
        return pred >= 0.5
    if rule == "fixed":
        return h >= 0.5
    if rule == "lvs":
        pred = 1 - normalize_img(-h)
        thr = np.sort(pred.flatten())[int(n * 0.5)]
        pred[pred > thr] = 1
        pred[pred < 1] = 0
        return pred >= 0.5
    pred = normalize_img(h)
    if rule == "sslalign_adaptive":
        count = int((gt != 0).sum())
        thr = np.sort(pred.flatten())[n - count] if count else np.sort(pred.flatten())[n // 2]
        return pred > thr
    thr = np.sort(pred.flatten())[int(n * 0.5)]
    return pred >= thr if rule == "ezvsl" else pred > thr
