// SPDX-License-Identifier: GPL-2.0-only
/*
 * drbd-rs C shim: only what Rust cannot express in 6.12 — the generic netlink family and its
 * ops table, block_device_operations (needs THIS_MODULE), the /proc entry, and thin wrappers of
 * static inline functions and macros, and the module parameter `usermode_helper` (the 6.12
 * `module!` macro has no parameters). No decisions are made here; every function forwards.
 */
#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/capability.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/sched/mm.h>
#include <net/genetlink.h>
#include <net/sock.h>
#include <linux/tcp.h>
#include <linux/net.h>
#include <linux/in.h>
#include <linux/highmem.h>
#include <crypto/hash.h>

#include "shim.h"

#define DRBD_MAJOR_NR 147
#define DRBD_USER_HDR_LEN 8

/* Entry points implemented in Rust (kmod/sys/entry.rs). */
int drbd_rs_genl_doit(struct sk_buff *skb, struct genl_info *info);
int drbd_rs_genl_dumpit(struct sk_buff *skb, struct netlink_callback *cb);
void drbd_rs_submit_bio(struct bio *bio);
int drbd_rs_open(struct gendisk *disk, blk_mode_t mode);
void drbd_rs_release(struct gendisk *disk);
void drbd_rs_free_disk(struct gendisk *disk);
int drbd_rs_proc_show(struct seq_file *m, void *v);

/* ---- generic netlink family "drbd" version 2 ---------------------------------------------- */

#define DOIT(c) { .cmd = (c), .doit = drbd_rs_genl_doit, .flags = GENL_ADMIN_PERM }
#define DUMPIT(c) { .cmd = (c), .dumpit = drbd_rs_genl_dumpit }

/* Command numbers are DRBD 9's (genl-spec/drbd.yaml); attribute parsing happens in Rust. */
static const struct genl_small_ops drbd_rs_genl_ops[] = {
	DOIT(5), DOIT(6), DOIT(7), DOIT(8), DOIT(9), DOIT(10), DOIT(11), DOIT(12), DOIT(13),
	DOIT(14), DOIT(15), DOIT(16), DOIT(17), DOIT(18), DOIT(19), DOIT(20), DOIT(21),
	DOIT(22), DOIT(23), DOIT(24), DOIT(25), DOIT(26), DOIT(27), DOIT(28), DOIT(29),
	DUMPIT(30), DUMPIT(31), DUMPIT(32), DUMPIT(33), DUMPIT(38),
	DOIT(42), DOIT(43), DOIT(44), DOIT(45), DOIT(46), DOIT(47), DOIT(49), DUMPIT(50),
};

static const struct genl_multicast_group drbd_rs_mcgrps[] = {
	{ .name = "events" },
};

static struct genl_family drbd_rs_genl_family __ro_after_init = {
	.name = "drbd",
	.version = 2,
	.hdrsize = DRBD_USER_HDR_LEN,
	.maxattr = 0,
	.module = THIS_MODULE,
	/* Our own locks serialise requests (registry.rs); genl_mutex must not be held while a
	 * request waits for a thread that waits for a usermode helper that calls us. */
	.parallel_ops = true,
	.small_ops = drbd_rs_genl_ops,
	.n_small_ops = ARRAY_SIZE(drbd_rs_genl_ops),
	/* All DRBD commands predate strict validation: keep the legacy, lenient parsing. */
	.resv_start_op = 51,
	.mcgrps = drbd_rs_mcgrps,
	.n_mcgrps = ARRAY_SIZE(drbd_rs_mcgrps),
};

int shim_genl_register(void)
{
	return genl_register_family(&drbd_rs_genl_family);
}

void shim_genl_unregister(void)
{
	genl_unregister_family(&drbd_rs_genl_family);
}

/* The bytes after the generic netlink header: drbd user header followed by attributes. */
const void *shim_info_payload(struct genl_info *info, u32 *len, u8 *cmd)
{
	*len = genlmsg_len(info->genlhdr);
	*cmd = info->genlhdr->cmd;
	return genlmsg_data(info->genlhdr);
}

bool shim_info_capable_sys_admin(struct sk_buff *skb)
{
	return netlink_capable(skb, CAP_SYS_ADMIN);
}

/* Same, for the request that started a dump. */
const void *shim_cb_payload(struct netlink_callback *cb, u32 *len, u8 *cmd)
{
	const struct genlmsghdr *g = nlmsg_data(cb->nlh);

	*len = genlmsg_len(g);
	*cmd = g->cmd;
	return genlmsg_data(g);
}

long *shim_cb_args(struct netlink_callback *cb)
{
	return cb->args;
}

static int put_msg(struct sk_buff *skb, void *hdr, const void *user_hdr, const void *attrs,
		   u32 attrs_len)
{
	if (!hdr)
		return -EMSGSIZE;
	memcpy(hdr, user_hdr, DRBD_USER_HDR_LEN);
	if (attrs_len && skb_tailroom(skb) < attrs_len) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	skb_put_data(skb, attrs, attrs_len);
	genlmsg_end(skb, hdr);
	return 0;
}

int shim_genl_reply(struct genl_info *info, u8 cmd, const void *user_hdr, const void *attrs,
		    u32 attrs_len)
{
	struct sk_buff *skb = genlmsg_new(attrs_len + DRBD_USER_HDR_LEN, GFP_KERNEL);
	int err;

	if (!skb)
		return -ENOMEM;
	err = put_msg(skb, genlmsg_put_reply(skb, info, &drbd_rs_genl_family, 0, cmd), user_hdr,
		      attrs, attrs_len);
	if (err) {
		nlmsg_free(skb);
		return err;
	}
	return genlmsg_reply(skb, info);
}

int shim_genl_dump_put(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd,
		       const void *user_hdr, const void *attrs, u32 attrs_len)
{
	void *hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				&drbd_rs_genl_family, NLM_F_MULTI, cmd);

	return put_msg(skb, hdr, user_hdr, attrs, attrs_len);
}

int shim_genl_multicast(u8 cmd, u32 seq, const void *user_hdr, const void *attrs, u32 attrs_len)
{
	struct sk_buff *skb;
	int err;

	if (!genl_has_listeners(&drbd_rs_genl_family, &init_net, 0))
		return 0;
	skb = genlmsg_new(attrs_len + DRBD_USER_HDR_LEN, GFP_NOIO);
	if (!skb)
		return -ENOMEM;
	err = put_msg(skb, genlmsg_put(skb, 0, seq, &drbd_rs_genl_family, 0, cmd), user_hdr, attrs,
		      attrs_len);
	if (err) {
		nlmsg_free(skb);
		return err;
	}
	err = genlmsg_multicast(&drbd_rs_genl_family, skb, 0, 0, GFP_NOIO);
	return err == -ESRCH ? 0 : err;
}

/* ---- block device ------------------------------------------------------------------------ */

static const struct block_device_operations drbd_rs_fops = {
	.owner = THIS_MODULE,
	.submit_bio = drbd_rs_submit_bio,
	.open = drbd_rs_open,
	.release = drbd_rs_release,
	.free_disk = drbd_rs_free_disk,
};

static struct bio_set drbd_rs_bio_set;

/* Every bio of drbd_rs_bio_set carries this in front: a clone keeps the I/O-statistics start
 * time of the upper bio it serves. */
struct drbd_rs_clone {
	unsigned long acct_start;
	struct bio bio;
};

void shim_clone_set_acct(struct bio *clone, unsigned long start)
{
	container_of(clone, struct drbd_rs_clone, bio)->acct_start = start;
}

unsigned long shim_clone_acct(struct bio *clone)
{
	return container_of(clone, struct drbd_rs_clone, bio)->acct_start;
}

int shim_blk_register(void)
{
	int err = register_blkdev(DRBD_MAJOR_NR, "drbd");

	if (err)
		return err;
	err = bioset_init(&drbd_rs_bio_set, BIO_POOL_SIZE, offsetof(struct drbd_rs_clone, bio),
			  BIOSET_NEED_BVECS);
	if (err)
		unregister_blkdev(DRBD_MAJOR_NR, "drbd");
	return err;
}

void shim_blk_unregister(void)
{
	bioset_exit(&drbd_rs_bio_set);
	unregister_blkdev(DRBD_MAJOR_NR, "drbd");
}

/* A bio-based disk /dev/drbd<minor>; not yet visible (see device_add_disk). */
struct gendisk *shim_alloc_disk(u32 minor, void *private_data)
{
	struct queue_limits lim;
	struct gendisk *disk;

	blk_set_stacking_limits(&lim);
	lim.max_hw_sectors = 1U << 11; /* 1 MiB, DRBD's max-bio-size */
	lim.max_zone_append_sectors = 0; /* not zoned */
	lim.features = BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA | BLK_FEAT_IO_STAT;
	disk = blk_alloc_disk(&lim, NUMA_NO_NODE);
	if (IS_ERR(disk))
		return disk;
	disk->major = DRBD_MAJOR_NR;
	disk->first_minor = minor;
	disk->minors = 1;
	disk->fops = &drbd_rs_fops;
	disk->private_data = private_data;
	snprintf(disk->disk_name, sizeof(disk->disk_name), "drbd%u", minor);
	return disk;
}

void *shim_disk_private(struct gendisk *disk)
{
	return disk->private_data;
}

/* Adopt the backing device's limits (discard, block sizes, cache features) on attach. */
int shim_disk_stack_limits(struct gendisk *disk, struct block_device *bdev)
{
	struct queue_limits lim = queue_limits_start_update(disk->queue);

	blk_set_stacking_limits(&lim);
	lim.max_hw_sectors = 1U << 11;
	lim.features = BLK_FEAT_IO_STAT;
	queue_limits_stack_bdev(&lim, bdev, 0, disk->disk_name);
	return queue_limits_commit_update(disk->queue, &lim);
}

u64 shim_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

struct block_device *shim_file_bdev(struct file *file)
{
	return file_bdev(file);
}

void *shim_bio_disk_private(struct bio *bio)
{
	return bio->bi_bdev->bd_disk->private_data;
}

/* Clone for the backing device from our bio_set; GFP_NOIO because we are in the I/O path. */
struct bio *shim_bio_clone(struct bio *bio, struct block_device *bdev)
{
	return bio_alloc_clone(bdev, bio, GFP_NOIO, &drbd_rs_bio_set);
}

/* A bio for one page of meta-data I/O, from our bio_set. */
struct bio *shim_bio_alloc_page(struct block_device *bdev, u64 sector, struct page *page,
				blk_opf_t opf)
{
	struct bio *bio = bio_alloc_bioset(bdev, 1, opf, GFP_NOIO, &drbd_rs_bio_set);

	if (!bio)
		return NULL;
	bio->bi_iter.bi_sector = sector;
	__bio_add_page(bio, page, PAGE_SIZE, 0);
	return bio;
}

u32 shim_bio_op(struct bio *bio)
{
	return bio_op(bio);
}

/* ---- /proc/drbd -------------------------------------------------------------------------- */

int shim_proc_create(void)
{
	return proc_create_single("drbd", 0444, NULL, drbd_rs_proc_show) ? 0 : -ENOMEM;
}

void shim_proc_remove(void)
{
	remove_proc_entry("drbd", NULL);
}

/* ---- kernel TCP sockets ------------------------------------------------------------------ */

int shim_sock_create_tcp(struct socket **res)
{
	return sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, res);
}

/* Socket options of a replication connection (struct sock is opaque to Rust). */
void shim_sock_tune(struct socket *sock, bool listener)
{
	struct sock *sk = sock->sk;

	sk->sk_allocation = GFP_NOIO;
	sk->sk_use_task_frag = false;
	if (listener) {
		sock_set_reuseaddr(sk);
		return;
	}
	tcp_sock_set_nodelay(sk);
	sock_set_keepalive(sk);
}

/* Blocking receive/accept timeout, in jiffies (0 = wait forever). */
void shim_sock_set_rcvtimeo(struct socket *sock, long timeo)
{
	WRITE_ONCE(sock->sk->sk_rcvtimeo, timeo ? timeo : MAX_SCHEDULE_TIMEOUT);
}

void shim_sock_set_sndtimeo(struct socket *sock, long timeo)
{
	WRITE_ONCE(sock->sk->sk_sndtimeo, timeo ? timeo : MAX_SCHEDULE_TIMEOUT);
}

long shim_msecs_to_jiffies(u32 ms)
{
	return msecs_to_jiffies(ms);
}

/* ---- replication helpers ----------------------------------------------------------------- */

/* Sends the payload of a bio (all its segments, corked until the last) on a socket; 0 or
 * -errno. */
/* bio_for_each_segment is a macro: the single-page segments of bio's remaining range, at
 * most max of them, into out; the count, or -E2BIG. */
int shim_bio_segments(struct bio *bio, struct bio_vec *out, unsigned int max)
{
	struct bio_vec bvec;
	struct bvec_iter iter;
	unsigned int n = 0;

	bio_for_each_segment(bvec, bio, iter) {
		if (n == max)
			return -E2BIG;
		out[n++] = bvec;
	}
	return n;
}

unsigned int shim_bio_segment_count(struct bio *bio)
{
	return bio_segments(bio);
}

bool shim_sendpage_ok(struct page *page)
{
	return sendpage_ok(page);
}

struct bio *shim_bio_alloc(struct block_device *bdev, u64 sector, unsigned short nr_vecs,
			   blk_opf_t opf)
{
	struct bio *bio = bio_alloc_bioset(bdev, nr_vecs, opf, GFP_NOIO, &drbd_rs_bio_set);

	if (bio)
		bio->bi_iter.bi_sector = sector;
	return bio;
}

unsigned int shim_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void shim_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

u64 shim_bio_sector(struct bio *bio)
{
	return bio->bi_iter.bi_sector;
}

u32 shim_bio_opf(struct bio *bio)
{
	return bio->bi_opf;
}

unsigned long shim_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void shim_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

/* ---- keyed hashes (CRAM-HMAC peer authentication) ---------------------------------------- */

void shim_crypto_free_shash(struct crypto_shash *tfm)
{
	crypto_free_shash(tfm);
}

unsigned int shim_crypto_shash_digestsize(struct crypto_shash *tfm)
{
	return crypto_shash_digestsize(tfm);
}

/* ---- module parameter usermode_helper (DRBD's name and default) --------------------------- */

static char drbd_rs_usermode_helper[80] = "/sbin/drbdadm";
module_param_string(usermode_helper, drbd_rs_usermode_helper, sizeof(drbd_rs_usermode_helper), 0644);
MODULE_PARM_DESC(usermode_helper, "program the kernel runs as HELPER HANDLER RESOURCE (disabled: none)");

/* Copies the parameter (NUL-terminated, truncated to len) under the parameter lock. */
void shim_usermode_helper(char *buf, size_t len)
{
	kernel_param_lock(THIS_MODULE);
	strscpy(buf, drbd_rs_usermode_helper, len);
	kernel_param_unlock(THIS_MODULE);
}
